"""``unlearnlab report``: one self-contained interactive HTML page per study folder (compare,
bench or forget-quality), with Plotly figures (``build``), and the per-sample file a study
keeps for it (``samples``). Importing this package loads neither Plotly nor the datasets."""
