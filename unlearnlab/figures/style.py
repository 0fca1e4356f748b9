"""One palette and one role vocabulary for every figure.

A run record, an ensemble comparison and every figure name their models by the roles of
``experiment.ROLES`` (untrained, original, retrained, unlearned; a comparison names its methods
by their names), so a figure names and colours a model the way the record does.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..experiment import ROLES

# The model roles of every record, comparison and figure.
UNTRAINED, ORIGINAL, RETRAINED, UNLEARNED = ROLES

# One colour per model role, the same in every figure.
ROLE_COLORS = {UNTRAINED: "0.6", ORIGINAL: "tab:blue", RETRAINED: "tab:green",
               UNLEARNED: "tab:red"}
METHOD_COLORS = {"gradient_ascent": "tab:orange", "gemu": "tab:purple", "gefeu": "tab:red",
                 "relabel": "tab:brown"}
EXTRA_COLORS = ("tab:pink", "tab:olive", "tab:cyan", "goldenrod", "navy", "teal")

# Panel order and titles of the three models of one run.
RUN_TITLES = {ORIGINAL: "before unlearning (original)", UNLEARNED: "after unlearning",
              RETRAINED: "retrained without the forget set (reference)"}

# The curves of one run: training (train set), test set after each epoch, unlearning.
TRAIN_COLOR, TEST_COLOR, UNLEARN_COLOR = "tab:blue", "tab:orange", "tab:red"
UNLEARN_LABEL = "unlearning (train set, against the relabelled targets)"

# The two probe sets of the loss membership-inference attack: (legend label, colour).
MIA_SETS = {"forget_train": (f"forget-train (seen by the {ORIGINAL} model)", "tab:purple"),
            "forget_test": ("forget-test (never trained on)", "tab:gray")}


def lighter(color, amount: float = 0.45):
    """``color`` mixed with white (``amount`` 0: unchanged, 1: white)."""
    from matplotlib.colors import to_rgb

    return tuple(c + (1 - c) * amount for c in to_rgb(color))


def ensemble_palette(models: Sequence[str]) -> dict[str, object]:
    """One colour per model name, the same in every ensemble figure: fixed colours for the
    roles and the known methods, ``"<method> (<variant>)"`` in a lighter shade of its
    method's colour, anything else from a fixed cycle."""
    palette, extra = {}, iter(EXTRA_COLORS * 4)
    for name in models:
        base = name.split(" (")[0]
        if name in ROLE_COLORS or name in METHOD_COLORS:
            palette[name] = ROLE_COLORS.get(name) or METHOD_COLORS[name]
        elif base != name and base in METHOD_COLORS:
            palette[name] = lighter(METHOD_COLORS[base])
        else:
            palette[name] = next(extra)
    return palette
