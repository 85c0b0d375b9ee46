"""From volumes to training batches: slice selection, normalisation, resizing, the split by
patient, and two ways to feed a Keras model.

* `preprocess_case` turns one case into 2-D slices ``x`` (n, size, size, C) float32 and
  labels ``y`` (n, size, size) uint8, the way the report does it but with the source
  notebook's mistakes fixed (z-score per modality, labels resized by nearest neighbour).
* `split_cases` / `save_split` / `load_split`: 68/20/12 by patient, seeded, stratified.
* `SliceSequence`: a `keras.utils.PyDataset` that mirrors the report's generator: it loads
  cases on demand for each batch. Easy to read; about as fast as the report's generator.
* `make_dataset`: the fast path the course recommends. Each case is preprocessed once into
  an on-disk cache; a ``tf.data`` pipeline streams shuffled slices from it.

Array layout: a slice ``x[k]`` is the axial plane ``volume[:, :, z]`` resized, so rows follow
the volume's first axis and columns its second, as ``cv2.resize(volume[:, :, z])`` gives in
the report's notebook.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import _cache
from ._preprocess import load_selection as _load_for
from ._preprocess import normalize_intensities, resize_images, resize_labels
from ._preprocess import preprocess_arrays as _preprocess_all
from .config import Config

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

default_cache_dir = _cache.default_cache_dir


# ---------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------
def _check_config(config):
    if not isinstance(config, Config):
        raise ValueError(f"config must be a gliseg_nb.Config, got {type(config).__name__}")


def preprocess_case(case_data_or_case, config, return_slices=False):
    """Turn one case into 2-D training slices, as the report does but done right.

    Steps: select the axial slices ``config.slice_indices`` (the report: 22..121), optionally
    keep only those with brain in them, normalise each modality over the brain voxels of
    the case (or divide by one shared maximum with ``normalization="max"``, as the source
    notebook does), resize images with a smooth (triangle, antialiased) filter and label
    maps by nearest neighbour, so that no label is invented at tumour edges.

    Parameters
    ----------
    case_data_or_case : gliseg_nb.data.CaseData or gliseg_nb.data.Case
        A loaded case, or a case to load (only the needed slices are read).
    config : gliseg_nb.Config
        Uses ``modalities``, ``slice_start``, ``n_slices``, ``slice_step``,
        ``brain_slices_only``, ``image_size`` and ``normalization``.
    return_slices : bool, default=False
        Also return the axial slice numbers (in the original volume) of the rows of ``x``.

    Returns
    -------
    x : numpy.ndarray of float32, shape (n, image_size, image_size, n_channels)
    y : numpy.ndarray of uint8, shape (n, image_size, image_size), or None
        Internal classes 0-3; None if the case has no segmentation.
    slices : numpy.ndarray of int
        Only with ``return_slices=True``.
    """
    _check_config(config)
    if hasattr(case_data_or_case, "images"):
        x, y, slices, has_brain = _preprocess_all(case_data_or_case, config)
    else:  # loaded here and dropped after: normalise in place, no copy
        x, y, slices, has_brain = _preprocess_all(_load_for(case_data_or_case, config), config, copy=False)
    if config.brain_slices_only:
        x, slices = x[has_brain], slices[has_brain]
        y = None if y is None else y[has_brain]
    if return_slices:
        return x, y, slices
    return x, y


def resize_labels_nearest(labels, size):
    """Resize label maps by nearest neighbour, the right way (no class can be invented).

    Parameters
    ----------
    labels : array-like of int, shape (X, Y) or (X, Y, n)
        Label map(s), slices last as in a volume.
    size : int
        Output rows and columns.

    Returns
    -------
    numpy.ndarray of uint8, shape (size, size) or (n, size, size)
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return resize_labels(labels[:, :, None], size)[0]
    return resize_labels(labels, size)


def resize_onehot_bilinear(labels, size, n_classes=4):
    """The source notebook's way: one-hot encode, then resize the masks bilinearly.

    Kept to show the pitfall: at every boundary the result is no longer one-hot (a pixel is
    "half edema, half background"), and the network is trained on those blended targets.

    Parameters
    ----------
    labels : array-like of int, shape (X, Y) or (X, Y, n)
        Label map(s), slices last as in a volume.
    size : int
        Output rows and columns.
    n_classes : int, default=4
        Number of classes to one-hot encode.

    Returns
    -------
    numpy.ndarray of float32, shape (size, size, n_classes) or (n, size, size, n_classes)
        Soft masks; ``argmax(axis=-1)`` turns them back into labels.
    """
    labels = np.asarray(labels)
    single = labels.ndim == 2
    stack = labels[:, :, None] if single else labels
    onehot = tf.one_hot(np.moveaxis(stack, -1, 0).astype(np.int32), n_classes)
    resized = tf.image.resize(onehot, (size, size), method="bilinear").numpy()
    return resized[0] if single else resized


def resize_labels_bilinear(labels, size):
    """Resize a label map as if it were an image (bilinear) and round: invents classes.

    Between background (0) and enhancing tumour (3) the interpolated values pass through
    1 and 2, so thin rims of "necrosis" and "edema" appear where there were none.

    Parameters
    ----------
    labels : array-like of int, shape (X, Y) or (X, Y, n)
    size : int

    Returns
    -------
    numpy.ndarray of uint8, shape (size, size) or (n, size, size)
    """
    labels = np.asarray(labels)
    single = labels.ndim == 2
    stack = (labels[:, :, None] if single else labels)[..., None].astype(np.float32)
    resized = resize_images(stack, size)[..., 0]
    out = np.rint(resized).astype(np.uint8)
    return out[0] if single else out


# ---------------------------------------------------------------------------------------
# Split by patient
# ---------------------------------------------------------------------------------------
class CaseSplit(dict):
    """``{"train": [ids], "val": [ids], "test": [ids]}`` plus how it was made.

    Attributes
    ----------
    seed : int or None
    fractions : tuple of float
        Train / validation / test fractions asked for.
    stratified_by : str or None
        ``"grade"`` when the split kept the HGG/LGG proportions, else None.
    """

    def __init__(self, train, val, test, seed=None, fractions=None, stratified_by=None):
        super().__init__(train=list(train), val=list(val), test=list(test))
        self.seed = seed
        self.fractions = tuple(fractions) if fractions is not None else None
        self.stratified_by = stratified_by

    def to_dict(self):
        return {
            "train": self["train"],
            "val": self["val"],
            "test": self["test"],
            "seed": self.seed,
            "fractions": list(self.fractions) if self.fractions else None,
            "stratified_by": self.stratified_by,
        }


def _case_id(case):
    return case if isinstance(case, str) else case.case_id


def split_cases(cases, config):
    """Split patients 68/20/12 into train, validation and test, as report section 6.2 does.

    Two ``train_test_split`` calls, as in the report: first 20 % of the patients are set
    aside for validation, then 15 % of the rest for testing (0.8 x 0.15 = 12 %). Unlike the
    source notebook the split is seeded (``config.seed``) and does not depend on the order
    of `cases`. When every case knows its grade (HGG/LGG, BraTS 2019 and 2020 layouts) the
    split keeps their proportions; if any grade is unknown, or a grade has too few patients
    for scikit-learn to stratify, it falls back to a plain random split (with a warning in
    the second case).

    Parameters
    ----------
    cases : sequence of gliseg_nb.data.Case or str
        The patients (case ids are also accepted; they carry no grade).
    config : gliseg_nb.Config
        Uses ``split`` (fractions, default (0.68, 0.20, 0.12)) and ``seed`` (default 42).

    Returns
    -------
    CaseSplit
        A dict ``{"train": [...], "val": [...], "test": [...]}`` of sorted case ids.
    """
    from sklearn.model_selection import train_test_split

    _check_config(config)
    by_id = {}
    for case in cases:
        case_id = _case_id(case)
        if case_id in by_id:
            raise ValueError(f"case id {case_id!r} appears twice; a patient must be in one set only")
        by_id[case_id] = None if isinstance(case, str) else getattr(case, "grade", None)
    ids = sorted(by_id)
    train_fraction, val_fraction, test_fraction = config.split
    needed = sum(1 for f in config.split if f > 0)
    if len(ids) < needed:
        raise ValueError(f"need at least {needed} cases to split {config.split}, got {len(ids)}")
    grades = [by_id[i] for i in ids]
    stratify = all(g is not None for g in grades) and len(set(grades)) > 1

    def two_step(use_grades):
        labels = grades if use_grades else None
        if val_fraction > 0:
            rest, val = train_test_split(
                ids, test_size=val_fraction, random_state=config.seed, shuffle=True, stratify=labels
            )
        else:
            rest, val = list(ids), []
        rest = sorted(rest)
        test_within_rest = test_fraction / (train_fraction + test_fraction) if test_fraction > 0 else 0
        if test_within_rest > 0 and train_fraction > 0:
            rest_labels = [by_id[i] for i in rest] if use_grades else None
            train, test = train_test_split(
                rest, test_size=test_within_rest, random_state=config.seed, shuffle=True, stratify=rest_labels
            )
        elif train_fraction > 0:
            train, test = rest, []
        else:
            train, test = [], rest
        return sorted(train), sorted(val), sorted(test)

    stratified_by = None
    if stratify:
        try:
            train, val, test = two_step(True)
            stratified_by = "grade"
        except ValueError as error:
            warnings.warn(f"cannot stratify the split by grade ({error}); splitting at random", stacklevel=2)
            train, val, test = two_step(False)
    else:
        train, val, test = two_step(False)
    return CaseSplit(train, val, test, seed=config.seed, fractions=config.split, stratified_by=stratified_by)


def save_split(split, path):
    """Write a split as JSON (atomically), with the seed and fractions that made it.

    Parameters
    ----------
    split : CaseSplit or dict
        ``{"train": [...], "val": [...], "test": [...]}``.
    path : str or pathlib.Path
        The ``.json`` file to write; parent folders are created.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    for key in ("train", "val", "test"):
        if key not in split:
            raise ValueError(f"a split needs 'train', 'val' and 'test' lists; {key!r} is missing")
    payload = split.to_dict() if isinstance(split, CaseSplit) else {
        "train": list(split["train"]),
        "val": list(split["val"]),
        "test": list(split["test"]),
        "seed": None,
        "fractions": None,
        "stratified_by": None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load_split(path, cases=None):
    """Read a split written by `save_split`.

    Parameters
    ----------
    path : str or pathlib.Path
        The JSON file.
    cases : sequence of gliseg_nb.data.Case or str, optional
        The cases available now. Default=None: no check. When given, every case id named in
        the file must be among them, else ``ValueError`` lists the missing ones.

    Returns
    -------
    CaseSplit
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read split ({error})") from None
    if not isinstance(payload, dict) or any(not isinstance(payload.get(k), list) for k in ("train", "val", "test")):
        raise ValueError(f"{path}: not a split file (needs 'train', 'val' and 'test' lists)")
    named = payload["train"] + payload["val"] + payload["test"]
    if len(set(named)) != len(named):
        raise ValueError(f"{path}: a case appears in more than one set")
    if cases is not None:
        available = {_case_id(c) for c in cases}
        missing = sorted(set(named) - available)
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise ValueError(f"{path}: {len(missing)} case(s) in the split were not found in the data: {shown}")
    return CaseSplit(
        payload["train"],
        payload["val"],
        payload["test"],
        seed=payload.get("seed"),
        fractions=payload.get("fractions"),
        stratified_by=payload.get("stratified_by"),
    )


def select_cases(cases, case_ids):
    """The cases whose ids are in `case_ids`, in that order.

    Parameters
    ----------
    cases : sequence of gliseg_nb.data.Case
    case_ids : sequence of str
        E.g. ``split["train"]``.

    Returns
    -------
    list of gliseg_nb.data.Case
    """
    by_id = {c.case_id: c for c in cases}
    missing = [i for i in case_ids if i not in by_id]
    if missing:
        raise ValueError(f"case(s) not found in the data: {', '.join(missing[:10])}")
    return [by_id[i] for i in case_ids]


# ---------------------------------------------------------------------------------------
# Feed 1: the report's generator, as a Keras 3 PyDataset
# ---------------------------------------------------------------------------------------
class SliceSequence(keras.utils.PyDataset):
    """Batches of slices loaded on demand, like the report's ``DataGenerator``.

    The slices of all cases form one stream, case after case (the report: 100 slices per
    case, one case per batch); batch ``i`` is slices ``i*batch_size`` to
    ``(i+1)*batch_size - 1``. Each batch loads the cases it touches (only the selected
    slices, via ``load_case(slices=...)``), preprocesses them with `preprocess_case` and
    one-hot encodes the labels. Nothing is kept between batches except the last two cases.

    Parameters
    ----------
    cases : sequence of gliseg_nb.data.Case
        Cases with segmentations.
    config : gliseg_nb.Config
        Slice selection, preprocessing, ``batch_size`` and ``n_classes``.
    shuffle : bool, default=True
        Shuffle the order of cases, and of slices within each case, at every epoch.
    seed : int, optional
        Seed of the shuffling. Default=None: ``config.seed``.
    workers : int, default=1
        Batches prepared in parallel (threads, or processes with `use_multiprocessing`).
    use_multiprocessing : bool, default=False
        Use processes instead of threads for `workers`.
    max_queue_size : int, default=10
        Batches prepared ahead.

    Notes
    -----
    With ``config.brain_slices_only`` the slices without brain are dropped from each batch,
    so batches can be smaller than ``batch_size``.
    """

    def __init__(
        self, cases, config, shuffle=True, seed=None, workers=1, use_multiprocessing=False, max_queue_size=10
    ):
        # Keras 3: parallelism is set on the dataset, not passed to fit().
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        _check_config(config)
        self.cases = list(cases)
        if not self.cases:
            raise ValueError("SliceSequence needs at least one case")
        no_seg = [c.case_id for c in self.cases if c.seg is None]
        if no_seg:
            raise ValueError(f"cases without segmentation cannot be used for training: {no_seg[:5]}")
        self.config = config
        self.shuffle = shuffle
        self.seed = config.seed if seed is None else seed
        self.slices_per_case = len(config.slice_indices)
        self.epoch = 0
        self._recent = OrderedDict()
        self._lock = threading.Lock()
        self._set_order()

    def __getstate__(self):
        # Worker processes started with "spawn" pickle the dataset: locks cannot travel,
        # and the recently used cases are not worth sending.
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_recent"] = OrderedDict()
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _set_order(self):
        n_cases = len(self.cases)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            self.case_order = rng.permutation(n_cases)
            self.slice_order = np.stack([rng.permutation(self.slices_per_case) for _ in range(n_cases)])
        else:
            self.case_order = np.arange(n_cases)
            self.slice_order = np.tile(np.arange(self.slices_per_case), (n_cases, 1))

    def __len__(self):
        total = len(self.cases) * self.slices_per_case
        return -(-total // self.config.batch_size)

    def on_epoch_end(self):
        self.epoch += 1
        self._set_order()

    def _case_arrays(self, case_index):
        with self._lock:
            if case_index in self._recent:
                self._recent.move_to_end(case_index)
                return self._recent[case_index]
        case_data = _load_for(self.cases[case_index], self.config)
        x, y, _, has_brain = _preprocess_all(case_data, self.config, copy=False)
        with self._lock:
            self._recent[case_index] = (x, y, has_brain)
            while len(self._recent) > 2:
                self._recent.popitem(last=False)
        return x, y, has_brain

    def __getitem__(self, index):
        if index < 0 or index >= len(self):
            raise IndexError(f"batch {index} out of range (0..{len(self) - 1})")
        start = index * self.config.batch_size
        stop = min(start + self.config.batch_size, len(self.cases) * self.slices_per_case)
        positions = np.arange(start, stop)
        xs, ys = [], []
        for position in np.unique(positions // self.slices_per_case):
            within = positions[positions // self.slices_per_case == position] % self.slices_per_case
            case_index = int(self.case_order[position])
            x, y, has_brain = self._case_arrays(case_index)
            rows = self.slice_order[case_index][within]
            if self.config.brain_slices_only:
                rows = rows[has_brain[rows]]
            xs.append(x[rows])
            ys.append(y[rows])
        x = np.concatenate(xs).astype(np.float32, copy=False)
        labels = np.concatenate(ys)
        onehot = np.eye(self.config.n_classes, dtype=np.float32)[labels]
        return x, onehot


# ---------------------------------------------------------------------------------------
# Feed 2: cache + tf.data
# ---------------------------------------------------------------------------------------
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


def _augment(x, y, seed):
    """Random flips (same for image and labels) and a small intensity scale and shift."""
    batch = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    flip_rows = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[0]) < 0.5
    flip_cols = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[1]) < 0.5
    y = y[..., None]
    x = tf.where(flip_rows, tf.reverse(x, axis=[1]), x)
    y = tf.where(flip_rows, tf.reverse(y, axis=[1]), y)
    x = tf.where(flip_cols, tf.reverse(x, axis=[2]), x)
    y = tf.where(flip_cols, tf.reverse(y, axis=[2]), y)
    channels = tf.shape(x)[-1]
    scale = tf.random.stateless_uniform([batch, 1, 1, channels], seeds[2], 0.9, 1.1)
    shift = tf.random.stateless_uniform([batch, 1, 1, channels], seeds[3], -0.1, 0.1)
    # Only brain pixels: the background stays exactly 0, as the network saw it so far.
    inside = tf.reduce_any(tf.not_equal(x, 0), axis=-1, keepdims=True)
    x = tf.where(inside, x * scale + shift, x)
    return x, y[..., 0]


def make_dataset(cases, config, training=True, cache_dir=None, workers=None, progress=True):
    """The fast input pipeline: an on-disk slice cache streamed with ``tf.data``.

    Each case is preprocessed once (`preprocess_case`) into float16/uint8 ``.npy`` files,
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
            raise ValueError(f"{path}: cache entry is not readable; delete the folder and retry")
        counts.append(len(entry[0]))
        slice_shape = entry[0].shape[1:]
        del entry
    counts = np.array(counts, dtype=np.int64)
    if counts.sum() == 0:
        raise ValueError("no slices selected from these cases (check slice_start, n_slices, brain_slices_only)")

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
    if training and config.augment:
        seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).batch(2)
        batches = tf.data.Dataset.zip((batches, seeds)).map(
            lambda xy, seed: _augment(xy[0], xy[1], seed), num_parallel_calls=tf.data.AUTOTUNE
        )
    if training and (config.augment_appearance or config.augment_spatial):
        from .augment import randomize_batch  # domain randomisation (gliseg_nb/augment.py)

        seeds = tf.data.Dataset.random(seed=config.seed + 1, rerandomize_each_iteration=True).batch(2)
        batches = tf.data.Dataset.zip((batches, seeds)).map(
            lambda xy, seed: randomize_batch(xy[0], xy[1], seed, config), num_parallel_calls=tf.data.AUTOTUNE)
    n_classes = config.n_classes
    batches = batches.map(lambda x, y: (x, tf.one_hot(y, n_classes, dtype=tf.float32)), num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def load_arrays(cases, config, one_hot=True, progress=False):
    """All selected slices of a few cases as two in-memory arrays (for small sets only).

    Parameters
    ----------
    cases : sequence of gliseg_nb.data.Case or gliseg_nb.data.CaseData
    config : gliseg_nb.Config
    one_hot : bool, default=True
        Return ``y`` one-hot float32 ``(N, size, size, n_classes)``; False: uint8 labels.
    progress : bool, default=False
        Show a tqdm progress bar.

    Returns
    -------
    x : numpy.ndarray of float32, shape (N, size, size, n_channels)
    y : numpy.ndarray
    """
    from tqdm.auto import tqdm

    xs, ys = [], []
    for case in tqdm(list(cases), desc="loading", unit="case", disable=not progress):
        x, y = preprocess_case(case, config)
        if y is None:
            raise ValueError(f"case {getattr(case, 'case_id', '?')} has no segmentation")
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError("load_arrays needs at least one case")
    x, y = np.concatenate(xs), np.concatenate(ys)
    if one_hot:
        y = np.eye(config.n_classes, dtype=np.float32)[y]
    return x, y
