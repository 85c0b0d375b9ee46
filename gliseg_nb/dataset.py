"""The fast input pipeline: an on-disk slice cache streamed with ``tf.data``.

* `build_cache` preprocesses each case once (`gliseg_nb.preprocessing.preprocess_case`)
  into float16/uint8 ``.npy`` files (`gliseg_nb._cache`), skipping entries already valid.
* `make_dataset` streams shuffled, augmented, one-hot batches from that cache.
* `_augment` is the training augmentation `make_dataset` applies (random flips, a small
  intensity scale and shift), kept beside its one call site.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from . import _cache
from .config import _check_config
from .errors import ConfigError, RunError

__all__ = ["build_cache", "make_dataset", "default_cache_dir"]

default_cache_dir = _cache.default_cache_dir


def build_cache(cases, config, cache_dir=None, workers=None, progress=True):
    """Preprocess each case once into the on-disk cache (skipping valid entries).

    Parameters
    ----------
    cases : sequence of gliseg_nb.data.Case
    config : gliseg_nb.Config
    cache_dir : str or pathlib.Path, optional
        Default=None: `default_cache_dir` (``$GLISEG_NB_CACHE/slices`` or the OS cache).
    workers : int, optional
        Cases preprocessed at once, each in its own thread. Default=None:
        ``min(8, os.cpu_count())``; 1 builds them one after the other. Memory grows with
        it (about 90 MB per thread with the report preset), not with the number of cases.
    progress : bool, default=True
        Show a tqdm progress bar.

    Returns
    -------
    list of pathlib.Path
        One entry folder per case, in the order of `cases`.
    """
    _check_config(config)
    return _cache.build_entries(cases, config, cache_dir=cache_dir, workers=workers, progress=progress)


def _augment(x, y, seed, slices=1):
    """Random flips (same for image and labels) and a small intensity scale and shift.

    With 2.5-D inputs (`slices` = ``2 * context_slices + 1`` groups of channels, one per
    slice) each modality gets one scale and shift for all its slices, and the brain of each
    slice is its own.
    """
    batch = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    flip_rows = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[0]) < 0.5
    flip_cols = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[1]) < 0.5
    y = y[..., None]
    x = tf.where(flip_rows, tf.reverse(x, axis=[1]), x)
    y = tf.where(flip_rows, tf.reverse(y, axis=[1]), y)
    x = tf.where(flip_cols, tf.reverse(x, axis=[2]), x)
    y = tf.where(flip_cols, tf.reverse(y, axis=[2]), y)
    shape = tf.shape(x)
    modalities = shape[-1] // slices
    scale = tf.random.stateless_uniform([batch, 1, 1, modalities], seeds[2], 0.9, 1.1)
    shift = tf.random.stateless_uniform([batch, 1, 1, modalities], seeds[3], -0.1, 0.1)
    scale, shift = tf.tile(scale, [1, 1, 1, slices]), tf.tile(shift, [1, 1, 1, slices])
    # Only brain pixels: the background stays exactly 0, as the network saw it so far.
    grouped = tf.reshape(x, tf.concat([shape[:3], [slices, modalities]], axis=0))
    inside = tf.reduce_any(tf.not_equal(grouped, 0), axis=-1, keepdims=True)
    inside = tf.reshape(tf.broadcast_to(inside, tf.shape(grouped)), shape)
    x = tf.where(inside, x * scale + shift, x)
    return x, y[..., 0]


def make_dataset(cases, config, training=True, cache_dir=None, workers=None, progress=True):
    """The fast input pipeline: an on-disk slice cache streamed with ``tf.data``.

    Each case is preprocessed once (`gliseg_nb.preprocessing.preprocess_case`) into float16/uint8 ``.npy`` files,
    written atomically and rebuilt when a source file or a setting changes. Then slices are
    streamed from memory maps: cases interleaved, slices shuffled through a buffer, read a
    batch at a time in parallel, augmented, one-hot encoded and prefetched. Memory stays
    bounded by the batch and the shuffle buffer (which holds slice indices), not by the
    number of cases.

    Parameters
    ----------
    cases : sequence of gliseg_nb.data.Case
        Cases with segmentations.
    config : gliseg_nb.Config
        Preprocessing settings, ``batch_size``, ``shuffle_buffer``, ``augment``, ``seed``
        and ``n_classes``.
    training : bool, default=True
        Shuffle and (if ``config.augment``) augment. False: fixed order, no augmentation,
        the same batches every time (for validation and evaluation).
    cache_dir : str or pathlib.Path, optional
        Default=None: ``$GLISEG_NB_CACHE/slices``, else pooch's OS cache for gliseg-nb.
    workers : int, optional
        Threads preprocessing cases while building the cache (see `build_cache`).
        Default=None: ``min(8, os.cpu_count())``.
    progress : bool, default=True
        Show a progress bar while building the cache.

    Returns
    -------
    tf.data.Dataset
        Of ``(x, y)``: ``x`` float32 ``(batch, size, size, n_channels)``, ``y`` one-hot
        float32 ``(batch, size, size, n_classes)``. One pass is one epoch.
    """
    _check_config(config)
    cases = list(cases)
    if not cases:
        raise ValueError("make_dataset needs at least one case")
    paths = build_cache(cases, config, cache_dir=cache_dir, workers=workers, progress=progress)
    counts = []
    for path in paths:
        entry = _cache.read_entry(path)
        if entry is None:  # removed or corrupted between building and reading
            raise RunError(f"{path}: cache entry is not readable; delete the folder and retry")
        counts.append(len(entry[0]))
        slice_shape = entry[0].shape[1:]
        del entry
    counts = np.array(counts, dtype=np.int64)
    if counts.sum() == 0:
        raise ConfigError("no slices selected from these cases (check slice_start, n_slices, brain_slices_only)")

    reader = _cache.SliceReader(paths, slice_shape)
    size, channels = config.image_size, config.n_channels

    case_ids = tf.data.Dataset.range(len(paths))
    if training:
        case_ids = case_ids.shuffle(len(paths), seed=config.seed, reshuffle_each_iteration=True)
    counts_tensor = tf.constant(counts)

    def slices_of(case_index):
        return tf.data.Dataset.range(counts_tensor[case_index]).map(lambda s: (case_index, s))

    # Training interleaves several patients so that the shuffle buffer mixes patients;
    # evaluation goes case by case, slice by slice, so batches can be mapped back.
    slices = case_ids.interleave(
        slices_of,
        cycle_length=min(len(paths), 16) if training else 1,
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if training:
        # The buffer holds (case, slice) indices, not images: good mixing for a few bytes.
        slices = slices.shuffle(config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True)
    batches = slices.batch(config.batch_size)
    # tf.data cannot see through the interleave, so declare the number of batches: Keras
    # then shows a total in its progress bar and ends each epoch cleanly.
    n_batches = int(np.ceil(counts.sum() / config.batch_size))
    batches = batches.apply(tf.data.experimental.assert_cardinality(n_batches))

    def read(case_index, slice_index):
        x, y = tf.numpy_function(reader, [case_index, slice_index], [tf.float16, tf.uint8], stateful=False)
        x.set_shape([None, size, size, channels])
        y.set_shape([None, size, size])
        return tf.cast(x, tf.float32), y

    batches = batches.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Augmentation, training only: `_augment` above, on whole batches, with per-batch seeds.
    if training and config.augment:
        seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).batch(2)
        batches = tf.data.Dataset.zip((batches, seeds)).map(
            lambda xy, seed: _augment(xy[0], xy[1], seed, slices=2 * config.context_slices + 1),
            num_parallel_calls=tf.data.AUTOTUNE
        )
    if training and (config.augment_appearance or config.augment_spatial):
        from .augment import randomize_batch  # domain randomisation (gliseg_nb/augment.py)

        seeds = tf.data.Dataset.random(seed=config.seed + 1, rerandomize_each_iteration=True).batch(2)
        batches = tf.data.Dataset.zip((batches, seeds)).map(
            lambda xy, seed: randomize_batch(xy[0], xy[1], seed, config), num_parallel_calls=tf.data.AUTOTUNE)
    n_classes = config.n_classes
    batches = batches.map(lambda x, y: (x, tf.one_hot(y, n_classes, dtype=tf.float32)), num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)
