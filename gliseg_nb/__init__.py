"""gliseg-nb: a Jupyter-first course on glioma segmentation in brain MRI with a U-Net.

The light parts (labels, settings, data, preprocessing, split, orientation) import quickly;
the TensorFlow parts (sequence, dataset, model, losses, metrics, train, predict) are
imported on first use, so ``gliseg-nb cases`` does not pay for TensorFlow.
"""

import importlib

from .config import Config
from .errors import ConfigError, DataError, GlisegError, RunError
from .runs import RunFolder

__version__ = "0.1.0"

_LAZY_SUBMODULES = (
    "data",
    "labels",
    "preprocessing",
    "split",
    "sequence",
    "dataset",
    "pipeline",
    "orientation",
    "model",
    "losses",
    "metrics",
    "train",
    "predict",
    "runs",
    "plotting",
    "viewers",
)

__all__ = [
    "Config",
    "GlisegError",
    "DataError",
    "ConfigError",
    "RunError",
    "RunFolder",
    "__version__",
    "load_model",
    *_LAZY_SUBMODULES,
]


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_model(path, compile=True):
    """Load a model saved by gliseg-nb (``.keras``) with ``safe_mode=True``.

    Importing the package's losses and metrics registers them with Keras first, so the
    saved objects are recognised without a ``custom_objects`` argument.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.keras`` file.
    compile : bool, default=True
        Restore the optimizer, loss and metrics too.

    Returns
    -------
    keras.Model
    """
    import keras

    from . import losses  # noqa: F401  (registers custom objects)
    from .metrics import keras_metrics  # noqa: F401

    return keras.saving.load_model(path, compile=compile, safe_mode=True)
