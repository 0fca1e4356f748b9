"""Every figure of the lab, one module per concern.

- ``style``: the palette and the role vocabulary shared by every figure;
- ``base``: writing a figure (``save_figure``) and the axes helpers of the plot functions;
- ``run``, ``weights``, ``ensemble``: plot functions over plain values (one run's curves,
  matrices and bars; parameter heatmaps and distances; ensemble box plots, curves and matrices);
- ``result`` and ``comparison``: one function per named figure of a ``RunResult`` or of a
  ``compare.Comparison`` (the notebooks and the README);
- ``bench_records`` and ``bench``: reading a saved benchmark, and its leaderboard figures;
- ``tuning``: Optuna's history and importance plots of a study;
- ``forget_quality``: reading forget-quality bundles, and their per-example eps histograms and
  F per method against the ``retrain`` and ``original`` references;
- ``assets``: the figure sets written to ``assets/``; ``cli``: ``unlearnlab figures``.

Nothing is imported here, so that ``unlearnlab figures`` can choose matplotlib's backend before
pyplot is loaded: import the module you need, e.g. ``from unlearnlab.figures import bench``.
"""
