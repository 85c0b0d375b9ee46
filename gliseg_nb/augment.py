"""Randomisation of training slices on the fly, so that a model learns shape, not one look.

A network trained on images from one scanner learns that scanner's contrast: its brightness
curve, its sharpness, its noise. Real scans differ in all of these, from one institution to
the next. Domain randomisation (SynthSeg, Billot et al. 2023) trains on images whose look
is drawn anew at every step, so that the only thing constant across examples is what we
want the network to use: the shape and context of the anatomy and the lesion.

Two kinds of randomisation, each a TensorFlow function of one batch and a seed (stateless,
so the same seed gives the same batch):

* `random_appearance`: per slice and channel, a random gamma curve on the brain's
  intensities, a random contrast and brightness, a random mix with a blurred copy (thick
  slices and soft scanners look blurred), and Gaussian noise. Labels are untouched.
* `random_spatial`: per slice, a random rotation, scaling and shift of image and labels
  together (labels by nearest neighbour, so no class is invented).

`randomize_batch` applies what the `Config` asks for (``augment_appearance``,
``augment_spatial``); `gliseg_nb.pipeline.make_dataset` calls it on training batches.
Background pixels (exactly 0 after z-scoring: outside the skull-stripped brain) stay 0.
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["random_appearance", "random_spatial", "randomize_batch", "APPEARANCE_RANGES",
           "SPATIAL_RANGES"]

#: Ranges of `random_appearance` (uniform draws; gamma is drawn as exp(N(0, sigma))).
APPEARANCE_RANGES = {
    "log_gamma_sigma": 0.35,   # gamma 0.5-2 for most slices
    "contrast": (0.7, 1.4),    # multiplies z-scores
    "shift": (-0.3, 0.3),      # z-score units
    "blur_mix": (0.0, 1.0),    # weight of the blurred copy
    "blur_probability": 0.5,   # share of slices that are mixed with a blurred copy
    "noise": (0.0, 0.1),       # standard deviation, z-score units
}
#: Ranges of `random_spatial`.
SPATIAL_RANGES = {
    "rotation_degrees": 15.0,  # uniform in +-15 degrees
    "scale": (0.85, 1.15),     # zoom factor
    "shift_fraction": 0.05,    # of the image size, each axis
}


def _uniform(shape, seed, bounds):
    low, high = bounds
    return tf.random.stateless_uniform(shape, seed, low, high)


def _gaussian_kernel(sigma, channels):
    radius = int(math.ceil(2.5 * sigma))
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / tf.reduce_sum(kernel)
    kernel_2d = kernel[:, None] * kernel[None, :]
    return tf.tile(kernel_2d[:, :, None, None], [1, 1, channels, 1])


def random_appearance(x, seed, ranges=None):
    """Randomise the look of a batch of z-scored slices, each slice and channel its own way.

    Parameters
    ----------
    x : tf.Tensor, shape (batch, rows, cols, channels), float32
        Z-scored slices; pixels that are 0 in every channel are background.
    seed : tf.Tensor, shape (2,), int
        Stateless seed (``tf.random.experimental.stateless_split`` friendly).
    ranges : dict or None, default=None
        Overrides of `APPEARANCE_RANGES` (same keys).

    Returns
    -------
    tf.Tensor
        Same shape and dtype; background pixels still 0.

    Notes
    -----
    The gamma curve is applied to each slice-channel's brain intensities rescaled to
    0-1 between their minimum and maximum, then mapped back: it bends the brightness
    curve (which tissue looks brighter than which, and by how much) without moving the
    extremes. Then ``x * contrast + shift``, a blend ``(1 - w) x + w blur(x)`` and
    additive Gaussian noise follow.
    """
    r = {**APPEARANCE_RANGES, **(ranges or {})}
    x = tf.convert_to_tensor(x, tf.float32)
    shape = tf.shape(x)
    batch, channels = shape[0], x.shape[-1]
    seeds = tf.random.experimental.stateless_split(seed, num=7)
    inside = tf.reduce_any(tf.not_equal(x, 0.0), axis=-1, keepdims=True)
    per = [batch, 1, 1, channels]

    big = tf.constant(1e9, tf.float32)
    low = tf.reduce_min(tf.where(inside, x, big), axis=[1, 2], keepdims=True)
    high = tf.reduce_max(tf.where(inside, x, -big), axis=[1, 2], keepdims=True)
    low = tf.where(low > high, tf.zeros_like(low), low)  # slices without brain
    span = tf.maximum(high - low, 1e-3)
    unit = tf.clip_by_value((x - low) / span, 0.0, 1.0)
    gamma = tf.exp(tf.random.stateless_normal(per, seeds[0]) * r["log_gamma_sigma"])
    x = low + span * tf.pow(unit + 1e-6, gamma)

    x = x * _uniform(per, seeds[1], r["contrast"]) + _uniform(per, seeds[2], r["shift"])

    kernel = _gaussian_kernel(1.0, channels)
    blurred = tf.nn.depthwise_conv2d(tf.where(inside, x, 0.0), kernel, [1, 1, 1, 1], "SAME")
    weight = _uniform([batch, 1, 1, 1], seeds[3], r["blur_mix"])
    weight = tf.where(tf.random.stateless_uniform([batch, 1, 1, 1], seeds[4]) < r["blur_probability"],
                      weight, 0.0)
    x = (1.0 - weight) * x + weight * blurred

    sigma = _uniform([batch, 1, 1, 1], seeds[5], r["noise"])
    x = x + sigma * tf.random.stateless_normal(shape, seeds[6])
    return tf.where(inside, x, 0.0)


def _affine_matrices(batch, size, seed, r):
    """Per-slice projective transforms (output pixel -> input pixel), flattened as
    ``ImageProjectiveTransformV3`` expects: (batch, 8)."""
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    angle = _uniform([batch], seeds[0], (-1.0, 1.0)) * (r["rotation_degrees"] * math.pi / 180.0)
    scale = _uniform([batch], seeds[1], r["scale"])
    shift = _uniform([batch, 2], seeds[2], (-1.0, 1.0)) * (r["shift_fraction"] * size)
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    centre = (size - 1) / 2.0
    # input = A (output - centre) + centre + shift, with A the inverse rotation-scaling.
    tx = centre - cos * centre + sin * centre + shift[:, 0]
    ty = centre - sin * centre - cos * centre + shift[:, 1]
    zeros = tf.zeros_like(cos)
    return tf.stack([cos, -sin, tx, sin, cos, ty, zeros, zeros], axis=1)


def random_spatial(x, y, seed, ranges=None):
    """Rotate, scale and shift each slice and its labels together, at random.

    Parameters
    ----------
    x : tf.Tensor, shape (batch, size, size, channels), float32
    y : tf.Tensor, shape (batch, size, size), integer labels
    seed : tf.Tensor, shape (2,), int
        Stateless seed.
    ranges : dict or None, default=None
        Overrides of `SPATIAL_RANGES` (same keys).

    Returns
    -------
    x, y : tf.Tensor
        Transformed; images bilinearly, labels by nearest neighbour; pixels brought in from
        outside the slice are background (0).
    """
    r = {**SPATIAL_RANGES, **(ranges or {})}
    x = tf.convert_to_tensor(x, tf.float32)
    size = tf.cast(tf.shape(x)[1], tf.float32)
    batch = tf.shape(x)[0]
    transforms = _affine_matrices(batch, size, seed, r)
    output_shape = tf.shape(x)[1:3]
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=output_shape, fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")
    labels = tf.cast(y, tf.float32)[..., None]
    labels = tf.raw_ops.ImageProjectiveTransformV3(
        images=labels, transforms=transforms, output_shape=output_shape, fill_value=0.0,
        interpolation="NEAREST", fill_mode="CONSTANT")
    return x, tf.cast(labels[..., 0], y.dtype)


def randomize_batch(x, y, seed, config):
    """The randomisation a `Config` asks for, applied to one training batch.

    Parameters
    ----------
    x : tf.Tensor, shape (batch, size, size, channels), float32
    y : tf.Tensor, shape (batch, size, size), integer labels
    seed : tf.Tensor, shape (2,), int
    config : gliseg_nb.Config
        ``augment_spatial`` (default False): `random_spatial`; ``augment_appearance``
        (default False): `random_appearance`.

    Returns
    -------
    x, y : tf.Tensor
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    if config.augment_spatial:
        x, y = random_spatial(x, y, seeds[0])
    if config.augment_appearance:
        x = random_appearance(x, seeds[1])
    return x, y
