"""One settings object for data, model and training, with named presets.

``Config.preset("report")`` reproduces the report's choices; ``Config.preset("quick")`` is a
teaching shortcut small enough to train for real on two CPU cores in a minute or two. Any
field can be overridden: ``Config.preset("quick", epochs=3)`` or ``config.replace(seed=1)``.
The settings used are saved as JSON next to everything trained (`Config.save`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass

from ._io import atomic_write, user_path
from .errors import ConfigError

from .labels import MODALITIES

__all__ = ["Config", "PRESETS"]

LOSSES = ("categorical_crossentropy", "dice", "ce+dice", "ce+region_dice")

#: What the network's last layer gives (`Config.outputs`).
OUTPUTS = ("softmax", "regions")

#: Fields added after caches were keyed on the settings, with their defaults. Cache keys
#: (`Config.key_dict`) leave such a field out while it has its default, so that slice caches
#: and cached runs made before it existed stay valid.
ADDED_FIELDS = {"context_slices": 0, "outputs": "softmax"}


@dataclass(frozen=True)
class Config:
    """Settings for the whole pipeline. Defaults are the report's choices.

    Every field is checked on construction: a value of the wrong kind or out of range
    raises `gliseg_nb.ConfigError` (a ValueError) naming the field.

    Parameters
    ----------
    preset : str, default="report"
        Name of the preset these settings started from (recorded, not interpreted).
    modalities : tuple of str, default=("flair", "t1ce")
        Input channels, in order. Any of ``"flair"``, ``"t1"``, ``"t1ce"``, ``"t2"``.
    slice_start : int, default=22
        First axial slice used (``VOLUME_START_AT`` in the report).
    n_slices : int, default=100
        Number of consecutive axial slices per case (``VOLUME_SLICES``).
    slice_step : int, default=1
        Keep every ``slice_step``-th of those slices (1 keeps them all).
    brain_slices_only : bool, default=False
        Drop selected slices that contain no brain voxels.
    image_size : int, default=128
        Slices are resized to ``image_size x image_size`` pixels.
    n_classes : int, default=4
        Output classes: 0 background, 1 necrotic core, 2 edema, 3 enhancing.
    context_slices : int, default=0
        2.5-D input: the ``context_slices`` axial slices on each side of a slice are given
        to the network as extra channels (edges repeat the first or last slice), so it sees
        a little of the third dimension. 0: one slice, the report's 2-D input.
    normalization : {"zscore", "max"}, default="zscore"
        ``"zscore"``: per case and modality over brain voxels. ``"max"``: the source
        notebook's division by one shared maximum (kept to show why it is worse).
    batch_size : int, default=100
        Slices per batch. The report feeds one patient (100 slices) per batch.
    shuffle_buffer : int, default=1000
        Slices held for shuffling across patients in the fast pipeline.
    augment : bool, default=False
        Random flips and small intensity scale/shift during training.
    augment_appearance : bool, default=False
        Randomise the look of each training slice (`gliseg_nb.augment.random_appearance`:
        gamma, contrast, brightness, blur, noise), so that the network cannot rely on one
        scanner's contrast.
    augment_spatial : bool, default=False
        Random rotation, scaling and shift of each training slice and its labels
        (`gliseg_nb.augment.random_spatial`).
    split : tuple of float, default=(0.68, 0.20, 0.12)
        Train / validation / test fractions, by patient (report section 6.2).
    seed : int, default=42
        Seed for the split, shuffling, augmentation and weight initialisation.
    base_filters : int, default=32
        Filters in the first U-Net level; doubled at each level down.
    depth : int, default=4
        Number of pooling steps (the report: 4, with 32-64-128-256 then a 512 bottleneck).
    dropout : float, default=0.2
        Dropout in the bottleneck.
    batch_norm, residual, attention : bool, default=False
        U-Net variants (report section 4.5), all off for the report's network.
    loss : {"categorical_crossentropy", "dice", "ce+dice", "ce+region_dice"}, default="categorical_crossentropy"
        Training loss. ``"ce+region_dice"`` adds the soft Dice of the BraTS regions
        (WT, TC, ET) to the cross-entropy: it trains for what BraTS scores.
    class_weights : tuple of float or None, default=None
        Optional per-class weights for the loss.
    learning_rate : float, default=1e-3
        Adam learning rate.
    epochs : int, default=35
        Maximum number of epochs.
    steps_per_epoch : int or None, default=None
        Batches per epoch; None means one pass over the training slices.
    early_stopping_patience : int, default=6
        Epochs without val_loss improvement before stopping.
    deterministic : bool, default=False
        Enable TensorFlow op determinism (reproducible, slower).
    mixed_precision : bool, default=False
        Use float16 compute on GPUs (the softmax stays float32).
    jit_compile : bool, default=False
        XLA-compile the training step.
    """

    preset: str = "report"
    # data
    modalities: tuple = ("flair", "t1ce")
    slice_start: int = 22
    n_slices: int = 100
    slice_step: int = 1
    brain_slices_only: bool = False
    image_size: int = 128
    n_classes: int = 4
    context_slices: int = 0
    normalization: str = "zscore"
    batch_size: int = 100
    shuffle_buffer: int = 1000
    augment: bool = False
    augment_appearance: bool = False
    augment_spatial: bool = False
    split: tuple = (0.68, 0.20, 0.12)
    seed: int = 42
    # model
    base_filters: int = 32
    depth: int = 4
    dropout: float = 0.2
    batch_norm: bool = False
    residual: bool = False
    attention: bool = False
    outputs: str = "softmax"
    # training
    loss: str = "categorical_crossentropy"
    class_weights: tuple | None = None
    learning_rate: float = 1e-3
    epochs: int = 35
    steps_per_epoch: int | None = None
    early_stopping_patience: int = 6
    deterministic: bool = False
    mixed_precision: bool = False
    jit_compile: bool = False

    def __post_init__(self):
        if not isinstance(self.preset, (str, type(None))) and callable(self.preset):
            # The classmethod `preset` below shadows this field's default in the class body,
            # so ``Config()`` (and a saved file without "preset") would get the method.
            object.__setattr__(self, "preset", "report")
        # Lists arrive from JSON; keep tuples so the object stays hashable and comparable.
        for name in ("modalities", "split", "class_weights"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        self._check_types()
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities:
            raise ConfigError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if len(set(self.modalities)) != len(self.modalities):
            raise ConfigError(f"modalities must not repeat, got {self.modalities}")
        if self.normalization not in ("zscore", "max"):
            raise ConfigError(f"normalization must be 'zscore' or 'max', got {self.normalization!r}")
        if self.outputs not in OUTPUTS:
            raise ConfigError(f"outputs must be one of {OUTPUTS}, got {self.outputs!r}")
        if self.outputs == "regions" and self.n_classes != 4:
            raise ConfigError(f"outputs='regions' needs the four BraTS classes (n_classes=4), got {self.n_classes}")
        if self.context_slices < 0:
            raise ConfigError(f"context_slices must be >= 0, got {self.context_slices}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if len(self.split) != 3 or abs(sum(self.split) - 1.0) > 1e-6 or min(self.split) < 0:
            raise ConfigError(f"split must be three non-negative fractions summing to 1, got {self.split}")
        for name in ("n_slices", "slice_step", "image_size", "batch_size", "epochs", "base_filters", "depth",
                     "shuffle_buffer", "n_classes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_classes < 2:
            raise ConfigError(f"n_classes must be at least 2, got {self.n_classes}")
        if self.image_size % (2**self.depth):
            raise ConfigError(
                f"image_size ({self.image_size}) must be divisible by 2**depth ({2**self.depth})"
            )
        if self.slice_start < 0:
            raise ConfigError(f"slice_start must be >= 0, got {self.slice_start}")
        if self.early_stopping_patience < 0:
            raise ConfigError(f"early_stopping_patience must be >= 0, got {self.early_stopping_patience}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be at least 1 or None, got {self.steps_per_epoch}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.class_weights is not None:
            weights = self.class_weights
            if len(weights) != self.n_classes:
                raise ConfigError(
                    f"class_weights needs one weight per class ({self.n_classes}), got {len(weights)}"
                )
            if not all(math.isfinite(w) and w >= 0 for w in weights) or not any(w > 0 for w in weights):
                raise ConfigError(f"class_weights must be non-negative with at least one positive, got {weights}")

    def _check_types(self):
        """Each field has its declared kind (a JSON file or a caller may pass anything)."""
        integer = (numbers.Integral,)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kind = str(field.type)  # the annotation as written: "int", "tuple | None", ...
            if value is None and "None" in kind:
                continue
            if kind.startswith("bool"):
                ok = isinstance(value, bool)
            elif kind.startswith("int"):
                ok = isinstance(value, integer) and not isinstance(value, bool)
            elif kind.startswith("float"):
                ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            elif kind.startswith("str"):
                ok = isinstance(value, str)
            else:  # tuples: of numbers (split, class_weights) or of modality names
                ok = isinstance(value, tuple)
                if ok and field.name in ("split", "class_weights"):
                    ok = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
                elif ok:
                    ok = all(isinstance(v, str) for v in value)
            if not ok:
                raise ConfigError(f"{field.name} must be {kind.replace(' | None', ' or None')}, got {value!r}")

    # -- construction -------------------------------------------------------------------
    @classmethod
    def preset(cls, name="quick", **overrides):
        """Settings of a named preset, with any field overridden.

        Parameters
        ----------
        name : {"report", "quick"}, default="quick"
            ``"report"``: the report's choices. ``"quick"``: a small, fast teaching setting.
        **overrides
            Fields to change, e.g. ``epochs=3``.

        Returns
        -------
        Config
        """
        try:
            fields = PRESETS[name]
        except KeyError as error:
            raise ConfigError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}") from error
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"Unknown Config field(s): {unknown}")
        return cls(**{**fields, "preset": name, **overrides})

    def replace(self, **changes):
        """A copy with some fields changed."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"Unknown Config field(s): {unknown}")
        return dataclasses.replace(self, **changes)

    # -- derived values -----------------------------------------------------------------
    @property
    def n_channels(self):
        """Number of input channels: one per modality and slice (``2 * context_slices + 1`` slices)."""
        return len(self.modalities) * (2 * self.context_slices + 1)

    @property
    def n_outputs(self):
        """Number of output channels: ``n_classes`` (softmax), or 3 (WT, TC, ET) for regions."""
        return 3 if self.outputs == "regions" else self.n_classes

    @property
    def slice_indices(self):
        """Axial slice indices selected from each volume (before brain filtering)."""
        stop = self.slice_start + self.n_slices
        return tuple(range(self.slice_start, stop, self.slice_step))

    @property
    def input_shape(self):
        """Model input shape ``(image_size, image_size, n_channels)``."""
        return (self.image_size, self.image_size, self.n_channels)

    # -- persistence --------------------------------------------------------------------
    def to_dict(self):
        return dataclasses.asdict(self)

    def key_dict(self):
        """The settings that name a cache entry: `to_dict` without `ADDED_FIELDS` at their default."""
        return {name: value for name, value in self.to_dict().items()
                if not (name in ADDED_FIELDS and value == ADDED_FIELDS[name])}

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown Config field(s): {unknown}")
        return cls(**values)

    def save(self, path):
        """Write the settings as JSON (atomically: `gliseg_nb._io.atomic_write`)."""
        path = user_path(path)
        with atomic_write(path) as handle:
            handle.write(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path):
        """Read settings written by `save`.

        Raises `gliseg_nb.ConfigError` naming the file if it cannot be read, is not JSON
        or holds an invalid setting.
        """
        path = user_path(path)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise ConfigError(f"{path}: settings file not found") from error
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"{path}: cannot read settings ({error})") from error
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: not a settings file (expected a JSON object)")
        try:
            return cls.from_dict(values)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from error


PRESETS = {
    # Exactly the report's choices: FLAIR + T1ce, 100 slices from 22, 128 px, 4 classes,
    # one patient (100 slices) per batch, the 7,759,908-parameter U-Net, Adam 1e-3.
    "report": dict(),
    # A teaching shortcut, not a result: 64 px, every 2nd slice, a narrow U-Net, a few
    # epochs. Trains for real on 2 CPU cores in a minute or two.
    "quick": dict(
        # All four contrasts: what one contrast hides another shows (a core that is not
        # bright on FLAIR is dark on T1, an edema bright on T2), and a model trained on
        # synthetic brains transferred better to real scans with them (docs/benchmarks.md,
        # "Transfer to real scans"). Costs only the first convolution's extra inputs.
        modalities=MODALITIES,
        image_size=64,
        # Every 2nd slice: twice the slices of every 4th for the same number of updates;
        # more varied data helped the whole tumour more than more epochs did.
        slice_step=2,
        # Small batches: in a one-minute budget the number of updates matters most
        # (batch 32 at lr 1e-3 barely learns the core; 8 at 2e-3 learns all three classes).
        batch_size=8,
        base_filters=8,
        depth=3,
        dropout=0.1,
        # Cross-entropy plus the soft Dice of the BraTS regions WT/TC/ET: trains for what is
        # scored (class-wise Dice left the whole tumour at 0.77-0.79; see docs/benchmarks.md).
        loss="ce+region_dice",
        # Necrotic core and enhancing tumour are ~0.1-0.2 % of the pixels each, edema ~1.6 %.
        class_weights=(1.0, 3.0, 1.0, 3.0),
        learning_rate=2e-3,
        augment=True,
        epochs=8,
        early_stopping_patience=4,
        shuffle_buffer=512,
    ),
}


def _check_config(config):
    """Raise `ConfigError` unless `config` is a `Config` (the library's functions take one)."""
    if not isinstance(config, Config):
        from .errors import ConfigError

        raise ConfigError(f"config must be a gliseg_nb.Config, got {type(config).__name__}")
