"""The report's generator, done right: a `keras.utils.PyDataset` of slices loaded on demand.

`SliceSequence` reads, for each batch, only the cases and slices that batch needs, and
preprocesses them with `gliseg_nb.preprocessing.preprocess_case`'s steps. Easy to read and
about as fast as the report's ``DataGenerator``; `gliseg_nb.dataset.make_dataset` is the
fast path the course recommends.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import keras
import numpy as np

from ._preprocess import load_selection as _load_for
from ._preprocess import preprocess_arrays as _preprocess_all
from .config import _check_config

__all__ = ["SliceSequence"]


class SliceSequence(keras.utils.PyDataset):
    """Batches of slices loaded on demand, like the report's ``DataGenerator``.

    The slices of all cases form one stream, case after case (the report: 100 slices per
    case, one case per batch); batch ``i`` is slices ``i*batch_size`` to
    ``(i+1)*batch_size - 1``. Each batch loads the cases it touches (only the selected
    slices, via ``load_case(slices=...)``), preprocesses them as `gliseg_nb.preprocessing.preprocess_case` does and
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
