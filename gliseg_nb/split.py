"""The split by patient: train, validation and test sets that never share a patient.

* `split_cases`: 68/20/12 by patient, as report section 6.2 does, but seeded and
  stratified by grade where the layout records one.
* `save_split` / `load_split`: the split as a small JSON file (``split.json`` in a run
  folder), with the seed and fractions that made it.
* `select_cases`: the cases of one set, e.g. ``select_cases(cases, split["train"])``.

No TensorFlow here: splitting a dataset takes a fraction of a second.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from ._io import atomic_write
from .config import _check_config
from .errors import DataError

__all__ = ["CaseSplit", "split_cases", "save_split", "load_split", "select_cases"]


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
            raise DataError(f"case id {case_id!r} appears twice; a patient must be in one set only")
        by_id[case_id] = None if isinstance(case, str) else getattr(case, "grade", None)
    ids = sorted(by_id)
    train_fraction, val_fraction, test_fraction = config.split
    needed = sum(1 for f in config.split if f > 0)
    if len(ids) < needed:
        raise DataError(f"need at least {needed} cases to split {config.split}, got {len(ids)}")
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
    with atomic_write(path) as handle:
        handle.write(json.dumps(payload, indent=2) + "\n")
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
        raise DataError(f"{path}: cannot read split ({error})") from error
    if not isinstance(payload, dict) or any(not isinstance(payload.get(k), list) for k in ("train", "val", "test")):
        raise DataError(f"{path}: not a split file (needs 'train', 'val' and 'test' lists)")
    named = payload["train"] + payload["val"] + payload["test"]
    if len(set(named)) != len(named):
        raise DataError(f"{path}: a case appears in more than one set")
    if cases is not None:
        available = {_case_id(c) for c in cases}
        missing = sorted(set(named) - available)
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise DataError(f"{path}: {len(missing)} case(s) in the split were not found in the data: {shown}")
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
        raise DataError(f"case(s) not found in the data: {', '.join(missing[:10])}")
    return [by_id[i] for i in case_ids]
