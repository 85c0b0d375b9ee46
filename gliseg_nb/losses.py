"""Training losses: the report's cross-entropy, a soft Dice over the tumour classes, and their sum.

Cross-entropy scores every pixel alike, so with background at about 98 % of the pixels a
network can get a low loss while still missing small tumour parts. The soft Dice loss
measures overlap of the tumour classes only and does not care how large the background is;
adding the two (``"ce+dice"``) keeps cross-entropy's smooth, well-scaled gradients early in
training and Dice's focus on the tumour later.

All losses take one-hot targets ``(batch, height, width, n_classes)`` and softmax
probabilities of the same shape, except `RegionLoss`: it takes the same one-hot targets
and the three sigmoid outputs of a region network (``Config(outputs="regions")``: WT, TC,
ET), and trains each region as its own yes/no question. All are registered with Keras (package ``"gliseg_nb"``), so
a model compiled with them saves to ``.keras`` and loads with `gliseg_nb.load_model`.
"""

from __future__ import annotations

import keras
from keras import ops

from .labels import REGIONS

__all__ = [
    "WeightedCategoricalCrossentropy",
    "DiceLoss",
    "CEDiceLoss",
    "RegionLoss",
    "dice_loss",
    "ce_dice_loss",
    "soft_dice_per_class",
    "soft_dice_per_region",
    "region_targets",
    "get_loss",
]

# Added to numerator and denominator of the soft Dice: a class absent from both the batch
# and the prediction scores 1 instead of 0/0, and gradients stay finite.
DICE_SMOOTH = 1.0


def _validate_class_weights(class_weights, n_classes=None):
    if class_weights is None:
        return None
    weights = [float(w) for w in class_weights]
    if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise ValueError(f"class_weights must be non-negative with at least one positive, got {class_weights}")
    if n_classes is not None and len(weights) != n_classes:
        raise ValueError(f"class_weights needs one weight per class ({n_classes}), got {len(weights)}")
    return tuple(weights)


def soft_dice_per_class(y_true, y_pred, smooth=DICE_SMOOTH):
    """Soft Dice of each class over a whole batch.

    ``(2 * sum(y * p) + smooth) / (sum(y) + sum(p) + smooth)``, the sums running over every
    pixel of every image in the batch (a batch-level Dice: slices without tumour do not
    each contribute a noisy 0/0).

    Parameters
    ----------
    y_true : tensor
        One-hot targets ``(..., n_classes)``.
    y_pred : tensor
        Probabilities, same shape.
    smooth : float, default=1.0
        Smoothing added to numerator and denominator.

    Returns
    -------
    tensor
        ``(n_classes,)`` Dice values in [0, 1].
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    n_classes = ops.shape(y_pred)[-1]
    y_true = ops.reshape(y_true, (-1, n_classes))
    y_pred = ops.reshape(y_pred, (-1, n_classes))
    intersection = ops.sum(y_true * y_pred, axis=0)
    total = ops.sum(y_true, axis=0) + ops.sum(y_pred, axis=0)
    return (2.0 * intersection + smooth) / (total + smooth)


def soft_dice_per_region(y_true, y_pred, smooth=DICE_SMOOTH):
    """Soft Dice of the BraTS regions WT, TC and ET over a whole batch.

    A region's probability is the sum of its classes' probabilities (WT = p1 + p2 + p3,
    TC = p1 + p3, ET = p3), so the loss rewards exactly what BraTS scores: a voxel of edema
    called necrosis still counts as whole tumour. This is the region-based training the
    BraTS 2020 winner (nnU-Net) used, here on top of a softmax over the four classes.

    Parameters
    ----------
    y_true : tensor
        One-hot targets ``(..., 4)``.
    y_pred : tensor
        Probabilities, same shape.
    smooth : float, default=1.0
        Smoothing added to numerator and denominator.

    Returns
    -------
    tensor
        ``(3,)`` Dice values of WT, TC and ET, in [0, 1].
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    dice = []
    for classes in REGIONS.values():
        true_region = ops.reshape(sum(y_true[..., c] for c in classes), (-1,))
        pred_region = ops.reshape(sum(y_pred[..., c] for c in classes), (-1,))
        intersection = ops.sum(true_region * pred_region)
        total = ops.sum(true_region) + ops.sum(pred_region)
        dice.append((2.0 * intersection + smooth) / (total + smooth))
    return ops.stack(dice)


def region_targets(y_true):
    """WT, TC and ET targets from one-hot class targets: the sums of each region's classes.

    Parameters
    ----------
    y_true : tensor
        One-hot targets ``(..., 4)`` (what the input pipeline feeds).

    Returns
    -------
    tensor
        ``(..., 3)`` float32, channels in the order of `gliseg_nb.labels.REGIONS`; the
        tensor version of `gliseg_nb.labels.labels_to_regions`.
    """
    y_true = ops.cast(y_true, "float32")
    return ops.stack([sum(y_true[..., c] for c in classes) for classes in REGIONS.values()], axis=-1)


def _per_sample(value, y_true):
    # Keras scales a loss for multi-replica training only when it is reduced from a vector;
    # a batch-level scalar is therefore repeated once per sample (the mean is unchanged).
    return ops.zeros(ops.shape(y_true)[:1], dtype="float32") + value


@keras.saving.register_keras_serializable(package="gliseg_nb")
class WeightedCategoricalCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with optional per-class weights.

    Without weights it equals ``keras.losses.CategoricalCrossentropy`` (the report's loss).
    With weights each pixel's loss is multiplied by the weight of its true class, the usual
    way to make rare classes (enhancing tumour) count more.

    Parameters
    ----------
    class_weights : sequence of float, optional
        One weight per class; default=None weighs all classes 1.
    name : str, default="weighted_categorical_crossentropy"
    reduction : str, default="sum_over_batch_size"
    """

    def __init__(self, class_weights=None, name="weighted_categorical_crossentropy",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = _validate_class_weights(class_weights)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        # Per pixel, then averaged over the pixels of each image: a (batch,) vector.
        pixel_loss = keras.losses.categorical_crossentropy(y_true, y_pred)
        if self.class_weights is not None:
            weights = ops.convert_to_tensor(self.class_weights, dtype="float32")
            pixel_loss = pixel_loss * ops.sum(y_true * weights, axis=-1)
        return ops.mean(ops.reshape(pixel_loss, (ops.shape(pixel_loss)[0], -1)), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=list(self.class_weights) if self.class_weights else None)
        return config


@keras.saving.register_keras_serializable(package="gliseg_nb")
class DiceLoss(keras.losses.Loss):
    """Soft Dice loss over the tumour classes: ``1 - mean Dice of classes 1..n-1``.

    Background is left out on purpose: its Dice is near 1 from the start and would dilute
    the signal of the classes we care about.

    Parameters
    ----------
    class_weights : sequence of float, optional
        One weight per class (``n_classes`` values, the background's is ignored); the Dice
        values of the tumour classes are averaged with these weights. Default=None: plain mean.
    smooth : float, default=1.0
        Smoothing of the soft Dice (see `soft_dice_per_class`).
    regions : bool, default=False
        Average the Dice of the BraTS regions WT, TC, ET (`soft_dice_per_region`) instead of
        the classes; class weights then do not apply to the Dice.
    name : str, default="dice_loss"
    reduction : str, default="sum_over_batch_size"
    """

    def __init__(self, class_weights=None, smooth=DICE_SMOOTH, regions=False, name="dice_loss",
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = _validate_class_weights(class_weights)
        if self.class_weights is not None and not any(w > 0 for w in self.class_weights[1:]):
            raise ValueError(f"DiceLoss needs a positive weight for at least one tumour class, got {class_weights}")
        self.smooth = float(smooth)
        self.regions = bool(regions)

    def call(self, y_true, y_pred):
        if self.regions:
            return _per_sample(1.0 - ops.mean(soft_dice_per_region(y_true, y_pred, self.smooth)), y_true)
        dice = soft_dice_per_class(y_true, y_pred, self.smooth)[1:]
        if self.class_weights is None:
            mean_dice = ops.mean(dice)
        else:
            weights = ops.convert_to_tensor(self.class_weights[1:], dtype="float32")
            mean_dice = ops.sum(dice * weights) / ops.sum(weights)
        return _per_sample(1.0 - mean_dice, y_true)

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=list(self.class_weights) if self.class_weights else None,
                      smooth=self.smooth, regions=self.regions)
        return config


@keras.saving.register_keras_serializable(package="gliseg_nb")
class CEDiceLoss(keras.losses.Loss):
    """Cross-entropy plus soft Dice loss: ``ce_weight * CE + dice_weight * Dice loss``.

    Parameters
    ----------
    class_weights : sequence of float, optional
        Passed to both parts; default=None.
    ce_weight : float, default=1.0
    dice_weight : float, default=1.0
    smooth : float, default=1.0
    regions : bool, default=False
        Use the Dice of the BraTS regions rather than of the classes (see `DiceLoss`).
    name : str, default="ce_dice_loss"
    reduction : str, default="sum_over_batch_size"
    """

    def __init__(self, class_weights=None, ce_weight=1.0, dice_weight=1.0, smooth=DICE_SMOOTH,
                 regions=False, name="ce_dice_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = _validate_class_weights(class_weights)
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.smooth = float(smooth)
        self.regions = bool(regions)
        self._crossentropy = WeightedCategoricalCrossentropy(self.class_weights)
        self._dice = DiceLoss(self.class_weights, smooth=self.smooth, regions=self.regions)

    def call(self, y_true, y_pred):
        return (self.ce_weight * self._crossentropy.call(y_true, y_pred)
                + self.dice_weight * self._dice.call(y_true, y_pred))

    def get_config(self):
        config = super().get_config()
        config.update(
            class_weights=list(self.class_weights) if self.class_weights else None,
            ce_weight=self.ce_weight, dice_weight=self.dice_weight, smooth=self.smooth,
            regions=self.regions,
        )
        return config


@keras.saving.register_keras_serializable(package="gliseg_nb")
class RegionLoss(keras.losses.Loss):
    """Loss of a region network: binary cross-entropy plus soft Dice of WT, TC and ET.

    ``ce_weight * BCE + dice_weight * (1 - mean soft Dice of the three regions)``, the
    loss nnU-Net and MONAI train BraTS region outputs with. Each of the three sigmoid
    outputs answers its own question ("is this pixel whole tumour?", "...tumour core?",
    "...enhancing?"), so the regions may overlap, as they do in BraTS.

    Parameters
    ----------
    class_weights : sequence of float, optional
        One weight per *class* (4 values): each pixel's cross-entropy is multiplied by the
        weight of its true class, as in `WeightedCategoricalCrossentropy`. The Dice is
        not weighted. Default=None: all pixels weigh 1.
    ce_weight : float, default=1.0
        Weight of the binary cross-entropy (mean over pixels and the three regions).
    dice_weight : float, default=1.0
        Weight of the soft Dice loss (batch-level, as `soft_dice_per_class`).
    smooth : float, default=1.0
        Smoothing of the soft Dice.
    name : str, default="region_loss"
    reduction : str, default="sum_over_batch_size"

    Notes
    -----
    Targets are the one-hot classes ``(batch, h, w, 4)`` the input pipeline feeds; they
    are turned into region targets here (`region_targets`). Predictions are the sigmoid
    probabilities ``(batch, h, w, 3)``.
    """

    def __init__(self, class_weights=None, ce_weight=1.0, dice_weight=1.0, smooth=DICE_SMOOTH,
                 name="region_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weights = _validate_class_weights(class_weights, 4 if class_weights is not None else None)
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        targets = region_targets(y_true)
        y_pred = ops.cast(y_pred, "float32")
        # Mean over the three regions: one cross-entropy per pixel, (batch, h, w).
        pixel_loss = ops.mean(ops.binary_crossentropy(targets, y_pred), axis=-1)
        if self.class_weights is not None:
            weights = ops.convert_to_tensor(self.class_weights, dtype="float32")
            pixel_loss = pixel_loss * ops.sum(ops.cast(y_true, "float32") * weights, axis=-1)
        crossentropy = ops.mean(ops.reshape(pixel_loss, (ops.shape(pixel_loss)[0], -1)), axis=-1)
        dice = soft_dice_per_class(targets, y_pred, self.smooth)  # the three regions' channels
        return self.ce_weight * crossentropy + self.dice_weight * _per_sample(1.0 - ops.mean(dice), y_true)

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=list(self.class_weights) if self.class_weights else None,
                      ce_weight=self.ce_weight, dice_weight=self.dice_weight, smooth=self.smooth)
        return config


@keras.saving.register_keras_serializable(package="gliseg_nb")
def dice_loss(y_true, y_pred):
    """Soft Dice loss over the tumour classes, as a function (see `DiceLoss`).

    Returns
    -------
    tensor
        ``(batch,)``, every entry the batch's loss.
    """
    return DiceLoss().call(y_true, y_pred)


@keras.saving.register_keras_serializable(package="gliseg_nb")
def ce_dice_loss(y_true, y_pred):
    """Cross-entropy plus soft Dice loss, as a function (see `CEDiceLoss`).

    Returns
    -------
    tensor
        ``(batch,)`` per-sample losses.
    """
    return CEDiceLoss().call(y_true, y_pred)


def get_loss(config):
    """The loss named by ``config.loss``, with ``config.class_weights``.

    Parameters
    ----------
    config : Config
        ``loss`` is one of ``"categorical_crossentropy"`` (the report's: Keras' own loss when
        there are no class weights), ``"dice"``, ``"ce+dice"`` or ``"ce+region_dice"``
        (cross-entropy plus the soft Dice of the regions WT, TC, ET). With
        ``outputs="regions"`` the same names give a `RegionLoss` on the three sigmoid
        outputs: cross-entropy becomes binary cross-entropy per region, and the Dice is the
        regions' (so ``"ce+dice"`` and ``"ce+region_dice"`` are the same loss).

    Returns
    -------
    keras.losses.Loss
    """
    class_weights = _validate_class_weights(config.class_weights, config.n_classes)
    if config.outputs == "regions":
        parts = {"categorical_crossentropy": (1.0, 0.0), "dice": (0.0, 1.0), "ce+dice": (1.0, 1.0),
                 "ce+region_dice": (1.0, 1.0)}
        if config.loss not in parts:
            raise ValueError(f"Unknown loss {config.loss!r} for region outputs; choose one of {sorted(parts)}")
        ce_weight, dice_weight = parts[config.loss]
        return RegionLoss(class_weights, ce_weight=ce_weight, dice_weight=dice_weight)
    if config.loss == "categorical_crossentropy":
        if class_weights is None:
            return keras.losses.CategoricalCrossentropy(name="categorical_crossentropy")
        return WeightedCategoricalCrossentropy(class_weights)
    if config.loss == "dice":
        return DiceLoss(class_weights)
    if config.loss == "ce+dice":
        return CEDiceLoss(class_weights)
    if config.loss == "ce+region_dice":
        return CEDiceLoss(class_weights, regions=True, name="ce_region_dice_loss")
    raise ValueError(
        f"Unknown loss {config.loss!r}; choose 'categorical_crossentropy', 'dice', 'ce+dice' or 'ce+region_dice'"
    )
