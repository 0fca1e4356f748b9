"""The named figures of the notebooks, under the names they use: those of one run are in
``unlearnlab.figures.result``, those of an ensemble comparison in
``unlearnlab.figures.comparison``."""

from unlearnlab.figures.comparison import (  # noqa: F401
    confusion_vs_retrained,
    ensemble_accuracy_boxes,
    ensemble_loss_boxes,
    ensemble_training_curves,
    kl_heatmap,
    layer_distance_bars,
    preset_accuracy_boxes,
    preset_rows,
    weight_change_heatmap,
)
from unlearnlab.figures.result import (  # noqa: F401
    accuracy_curves,
    confusion_matrices,
    forget_predictions,
    loss_curves,
    pca_features,
    per_class_accuracy,
    training_curves,
    weight_heatmap,
)
