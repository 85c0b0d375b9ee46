"""From volumes to training batches, in one import: the facade of four small modules.

The notebooks and most users import from here; each name lives in the module that owns it:

=============================  ========================================================
module                         names
=============================  ========================================================
`gliseg_nb.preprocessing`      `preprocess_case`, `load_arrays`, `normalize_intensities`,
                               `resize_labels_nearest`, `resize_onehot_bilinear`,
                               `resize_labels_bilinear`
`gliseg_nb.split`              `split_cases`, `CaseSplit`, `save_split`, `load_split`,
                               `select_cases`
`gliseg_nb.sequence`           `SliceSequence` (the report's generator, a Keras PyDataset)
`gliseg_nb.dataset`            `build_cache`, `make_dataset`, `default_cache_dir` (the
                               slice cache streamed with ``tf.data``)
=============================  ========================================================

The preprocessing and the split need no TensorFlow, and neither does this module until a
name from `gliseg_nb.sequence` or `gliseg_nb.dataset` is asked for: those two are imported
on first use, so ``from gliseg_nb.pipeline import split_cases`` stays fast.
"""

from __future__ import annotations

import importlib

from .preprocessing import (
    load_arrays,
    normalize_intensities,
    preprocess_case,
    resize_labels_bilinear,
    resize_labels_nearest,
    resize_onehot_bilinear,
)
from .split import CaseSplit, load_split, save_split, select_cases, split_cases

__all__ = [
    "preprocess_case",
    "normalize_intensities",
    "resize_labels_nearest",
    "resize_onehot_bilinear",
    "resize_labels_bilinear",
    "split_cases",
    "save_split",
    "load_split",
    "select_cases",
    "CaseSplit",
    "SliceSequence",
    "make_dataset",
    "load_arrays",
    "build_cache",
    "default_cache_dir",
]

# Names whose modules import TensorFlow (or Keras): resolved on first access (PEP 562).
_LAZY = {
    "SliceSequence": "sequence",
    "build_cache": "dataset",
    "make_dataset": "dataset",
    "default_cache_dir": "dataset",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __package__), name)
        globals()[name] = value  # resolved once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
