"""Metrics, in two halves.

* `gliseg_nb.metrics.keras_metrics`: stateful Keras metrics used during training (Dice,
  precision, sensitivity, specificity per class, accuracy, argmax mean IoU). They count
  over the whole epoch rather than averaging per batch.
* `gliseg_nb.metrics.evaluation`: NumPy scoring of whole label volumes by BraTS region
  (WT, TC, ET): Dice, HD95 in mm, sensitivity, specificity, volumes in mL.
"""
