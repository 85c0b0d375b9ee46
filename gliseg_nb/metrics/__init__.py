"""Metrics, in two halves.

* `gliseg_nb.metrics.keras_metrics`: stateful Keras metrics used during training (Dice,
  precision, sensitivity, specificity per class, accuracy, argmax mean IoU). They count
  over the whole epoch rather than averaging per batch.
* `gliseg_nb.metrics.evaluation`: NumPy scoring of whole label volumes by BraTS region
  (WT, TC, ET): Dice, HD95 in mm, sensitivity, specificity, volumes in mL, and the BraTS
  2023 lesion-wise Dice and HD95.
* `gliseg_nb.metrics.statistics`: how sure a mean over cases is (bootstrap confidence
  intervals) and how the empty-mask convention moves a region's mean.
"""

from .evaluation import (  # noqa: E402  (NumPy only: no TensorFlow import here)
    HD95_EMPTY_MM,
    background_everywhere_scores,
    dice_score,
    evaluate_case,
    evaluate_folder,
    hd95,
    keras_meaniou_as_fed,
    lesion_wise_scores,
    report_metrics,
    summarize_scores,
)
from .statistics import bootstrap_ci, empty_convention_effect, region_confidence_intervals  # noqa: E402

# The Keras metrics need TensorFlow: re-exported lazily so that `gliseg-nb evaluate` and
# `import gliseg_nb.metrics` stay fast. `gliseg_nb.load_model` imports the module itself
# (registering the classes with Keras).
_KERAS_METRICS = (
    "ConfusionCountsMetric",
    "DiceScore",
    "PrecisionScore",
    "SensitivityScore",
    "SpecificityScore",
    "ArgmaxMeanIoU",
    "PixelAccuracy",
    "RegionDiceScore",
    "SegmentationScores",
    "decode_regions",
    "default_metrics",
)


def __getattr__(name):
    if name in _KERAS_METRICS or name == "keras_metrics":
        import importlib

        module = importlib.import_module(".keras_metrics", __name__)
        return module if name == "keras_metrics" else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
