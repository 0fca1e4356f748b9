"""The report's Plotly figures, each returned as a plain figure dict (``data`` and ``layout``)
that the page renders with ``Plotly.newPlot``. No figure carries a template (Plotly's default
adds about 8 kB of styling to each); the page's one layout default styles them all. Values are
summarised here (histogram counts, mean matrices), so a figure's JSON stays small whatever
the number of samples.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from .. import forget_quality
from .samples import Samples

ROLE_COLORS = {"original": "#1f77b4", "retrained": "#2ca02c", "unlearned": "#d62728",
               "untrained": "#7f7f7f"}
# The subsets of the accuracy figure, in reading order, with MIA efficacy (a fraction too).
SUBSETS = {"forget_train_acc": "forget (train)", "forget_test_acc": "forget (test)",
           "retain_train_acc": "retain (train)", "retain_test_acc": "retain (test)",
           "test_acc": "test (all)", "mia_efficacy": "MIA efficacy"}
LOSS_BINS = np.linspace(-6, 2, 41)  # log10 of the per-sample loss: 1e-6 .. 100


# Figures carry float32 arrays: Plotly encodes numpy arrays as base64 typed arrays, and float32
# halves them at a precision far beyond what a chart shows.
def _plain(fig: go.Figure, height: int) -> dict:
    fig.update_layout(height=height, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    spec = json.loads(pio.to_json(fig, validate=False))  # numpy arrays as Plotly's typed arrays
    spec["layout"].pop("template", None)
    return {"data": spec["data"], "layout": spec["layout"]}


def zscore_heatmap(board: pd.DataFrame, scenarios: list[str]) -> dict:
    """avg |z| per method (rows, leaderboard order) and scenario (columns); colour on a log
    scale, as the values span from below 1 to hundreds of sigma."""
    values = board[scenarios].to_numpy(dtype=float)
    text = [["n/a" if np.isnan(v) else f"{v:.2f}" for v in row] for row in values]
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = np.log10(np.where(values > 0, values, np.nan))
    fig = go.Figure(go.Heatmap(
        z=colour, x=scenarios, y=list(board.index), text=text, texttemplate="%{text}",
        customdata=text, colorscale="Reds", zmin=-0.5, zmax=2.5,
        colorbar={"title": {"text": "avg |z| (σ)"}, "tickvals": [-0.5, 0, 1, 2],
                  "ticktext": ["0.3", "1", "10", "100"]},
        hovertemplate="%{y} on %{x}: avg |z| %{customdata} σ<extra></extra>"))
    fig.update_layout(title="avg |z| per method and scenario (lower is better)",
                      yaxis={"autorange": "reversed"})
    return _plain(fig, 120 + 28 * len(board))


def accuracy_spread(rows: pd.DataFrame, method: str) -> dict:
    """Each subset's accuracy (%) of the method's seeds beside the retrained ensemble's spread
    (box: the retrained seeds) and the original models'."""
    subsets = [k for k in SUBSETS if k in rows and rows[k].notna().any()]
    fig = go.Figure()
    for model, colour in (("retrained", ROLE_COLORS["retrained"]),
                          ("original", ROLE_COLORS["original"]),
                          (method, ROLE_COLORS["unlearned"])):
        part = rows[rows["model"] == model]
        x = [SUBSETS[k] for k in subsets for _ in range(len(part))]
        y = [None if pd.isna(v) else round(100 * float(v), 3)
             for k in subsets for v in part[k]]
        name = "retrained ensemble" if model == "retrained" else model
        fig.add_trace(go.Box(x=x, y=y, name=name, marker_color=colour, boxpoints="all",
                             jitter=0.3, pointpos=0, hovertemplate="%{x}: %{y:.2f} %"))
    fig.update_layout(boxmode="group", title=f"{method}: accuracy per subset against the "
                      "retrained ensemble (one point per seed)", yaxis_title="%",
                      legend={"orientation": "h", "y": -0.2})
    return _plain(fig, 380)


def confusion(unlearned: np.ndarray, retrained: np.ndarray, classes: list[str],
              seeds: int) -> dict:
    """The unlearned models' test confusion matrix (mean counts over ``seeds``) and its
    difference to the retrained models' (unlearned - retrained)."""
    labels = [str(c) for c in classes]
    delta = unlearned - retrained
    limit = float(np.abs(delta).max()) or 1.0
    fig = make_subplots(1, 2, subplot_titles=("unlearned", "unlearned − retrained"),
                        horizontal_spacing=0.12)
    fig.add_trace(go.Heatmap(z=np.round(unlearned, 1).astype(np.float32), x=labels, y=labels,
                             colorscale="Blues",
                             showscale=False, hovertemplate="true %{y}, predicted %{x}: "
                             "%{z:.1f}<extra></extra>"), 1, 1)
    fig.add_trace(go.Heatmap(z=np.round(delta, 1).astype(np.float32), x=labels, y=labels,
                             colorscale="RdBu",
                             reversescale=True, zmin=-limit, zmax=limit, zmid=0,
                             hovertemplate="true %{y}, predicted %{x}: %{z:+.1f} against "
                             "retraining<extra></extra>"), 1, 2)
    fig.update_yaxes(autorange="reversed", title_text="true class", col=1)
    fig.update_yaxes(autorange="reversed", col=2)
    fig.update_xaxes(title_text="predicted class")
    fig.update_layout(title=f"test confusion (mean counts over {seeds} seeds)")
    return _plain(fig, 420)


def _log_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(len(labels)), labels]
    return np.log10(np.clip(loss, 10 ** LOSS_BINS[0], 10 ** LOSS_BINS[-1]))


def mia_losses(outputs: Samples, method: str) -> dict:
    """Histograms of log10 per-sample cross-entropy of the unlearned and the retrained model
    (seed 0) on the forget training samples, the MIA's members (retain train) and
    non-members (held-out test): what the loss attack separates."""
    sets = {"forget_train": "forget (train)", "member": "members (retain train)",
            "nonmember": "non-members (test)"}
    colours = {"forget_train": "#d62728", "member": "#1f77b4", "nonmember": "#ff7f0e"}
    fig = make_subplots(1, 2, subplot_titles=(method, "retrained"), shared_yaxes=True)
    centres = ((LOSS_BINS[:-1] + LOSS_BINS[1:]) / 2).astype(np.float32)
    for col, role in ((1, "unlearned"), (2, "retrained")):
        for name, label in sets.items():
            losses = _log_loss(outputs.logits[role][name], outputs.labels[name])
            counts, _ = np.histogram(losses, LOSS_BINS)
            share = (counts / max(len(losses), 1)).astype(np.float32)
            fig.add_trace(go.Bar(x=centres, y=share, name=label, legendgroup=name,
                                 showlegend=col == 1, marker_color=colours[name], opacity=0.6,
                                 hovertemplate=f"{label}: %{{y:.1%}} at loss 1e%{{x}}"
                                 "<extra></extra>"), 1, col)
    fig.update_layout(barmode="overlay", bargap=0, title="per-sample loss (seed 0): the loss "
                      "MIA tells members from non-members by it", legend={"orientation": "h",
                                                                            "y": -0.25})
    fig.update_xaxes(title_text="log10 cross-entropy")
    fig.update_yaxes(title_text="share of the set", col=1)
    return _plain(fig, 380)


def epsilon_buckets(epsilons: dict[str, np.ndarray], n_models: int) -> dict:
    """How many forget samples of each study fall in each eps bucket of F (``forget_quality``:
    [0, 0.5) is worth 1 point, [0.5, 1) 1/2, ...; past the last bucket 0), one bar group per
    study (the references ``retrain`` and ``original`` beside the methods)."""
    points = forget_quality.bucket_points(n_models)
    edges = forget_quality.BUCKET_WIDTH * np.arange(points.size + 1)
    labels = [f"[{a:g}, {b:g})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    labels.append(f"≥ {edges[-1]:g} (0 points)")
    fig = go.Figure()
    palette = {"retrain": ROLE_COLORS["retrained"], "original": ROLE_COLORS["original"]}
    for name, values in epsilons.items():
        scores = forget_quality.example_scores(values, n_models)
        counts = [int(np.count_nonzero(scores == p)) for p in points]
        counts.append(int(np.count_nonzero(scores == 0)))
        share = [round(c / max(len(values), 1), 4) for c in counts]
        fig.add_trace(go.Bar(x=labels, y=share, name=name, marker_color=palette.get(name),
                             customdata=counts, hovertemplate=f"{name}: %{{customdata}} samples "
                             "(%{y:.1%}) with ε in %{x}<extra></extra>"))
    fig.update_layout(barmode="group", title=f"per-example ε ({n_models} models per side; "
                      "left is better)", xaxis_title="ε bucket", yaxis_title="share of the "
                      "forget samples", legend={"orientation": "h", "y": -0.3})
    return _plain(fig, 380)

