"""Helpers the course notebooks share, that belong to no single step of the pipeline.

The main one is `load_or_train`: notebooks 04, 05 and 06 all need a trained U-Net, and
each must run on its own, in any order, from a fresh kernel. Training takes a minute or two
with the ``quick`` preset on two CPU cores; doing it three times would triple the course's
run time. So the first notebook that asks trains the model into a *run folder* in the
cache, and every later call with the same settings and the same data reuses it::

    $GLISEG_NB_CACHE/runs/<preset>-<key>/     (default cache: pooch's OS cache folder)
        config.json  split.json  history.csv  best.keras  state.json  ...

The folder is what `gliseg_nb.train.fit` writes. Its name holds a key of the settings
(every `Config` field) and of the data (the folder, the case ids and the size and
modification time of the files used), so changing either trains a new model instead of
reusing a stale one. A run interrupted half-way (a kernel restarted during training) is
resumed by the next call, after its last finished epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ._io import cache_root, user_path
from .config import Config
from .runs import RunFolder

__all__ = ["TrainedRun", "demo_case", "format_settings", "load_or_train", "quiet_tensorflow",
           "run_key", "runs_dir"]

#: Bump when what a cached run holds changes; older runs are then ignored (not deleted).
RUN_CACHE_FORMAT = 1


def demo_case(cases, data_dir=None):
    """The case the notebooks show first: a high-grade case with much enhancing tumour.

    A low-grade case may have no enhancing tumour at all, so its pictures show no rim and
    its regions TC and ET add nothing to the class-by-class picture. For the synthetic
    cases, ``synthetic_parameters.json`` in `data_dir` records each case's grade and
    volumes: the high-grade case with the largest enhancing volume is chosen, so the
    choice stays right when the generator changes. Without that file (your own data) it
    is the first high-grade case with labels, or else the first case with labels.

    Parameters
    ----------
    cases : list of gliseg_nb.data.Case
        The cases to choose from (`gliseg_nb.data.find_cases`).
    data_dir : str or os.PathLike or None, default=None
        The folder holding ``synthetic_parameters.json``; None looks only at `cases`.

    Returns
    -------
    gliseg_nb.data.Case

    Raises
    ------
    ValueError
        If no case has labels.
    """
    by_id = {case.case_id: case for case in cases if case.seg is not None}
    if not by_id:
        raise ValueError("demo_case needs at least one case with a segmentation")
    parameters_file = Path(data_dir) / "synthetic_parameters.json" if data_dir is not None else None
    if parameters_file is not None and parameters_file.is_file():
        drawn = [entry for entry in json.loads(parameters_file.read_text())["cases"]
                 if entry["case_id"] in by_id and entry["grade"] == "HGG"]
        if drawn:
            chosen = max(drawn, key=lambda entry: entry["volumes_ml"]["enhancing"])
            return by_id[chosen["case_id"]]
    high_grade = [case for case in by_id.values() if case.grade == "HGG"]
    return (high_grade or list(by_id.values()))[0]


def format_settings(configs, fields=None, width=None):
    """Several `Config` objects side by side, one setting per line.

    Parameters
    ----------
    configs : dict of str to Config
        Column title -> settings (``{"quick": Config.preset("quick"), ...}``).
    fields : list of str or None, default=None
        The settings to show, in this order; None shows every field of `Config`.
    width : int or None, default=None
        Width of each column, in characters; None fits the widest value shown.

    Returns
    -------
    str
        The table, ready to print.
    """
    import dataclasses

    if fields is None:
        fields = [field.name for field in dataclasses.fields(Config)]
    name_width = max(len("setting"), *(len(name) for name in fields))
    if width is None:
        width = max(*(len(title) for title in configs),
                    *(len(str(getattr(config, name))) for config in configs.values() for name in fields))
    lines = [f"{'setting':{name_width}s} " + " ".join(f"{title:>{width}s}" for title in configs)]
    for name in fields:
        lines.append(f"{name:{name_width}s} "
                     + " ".join(f"{str(getattr(config, name)):>{width}s}" for config in configs.values()))
    return "\n".join(lines)


def quiet_tensorflow():
    """Import TensorFlow without its C++ log lines (call before importing it).

    TensorFlow prints a dozen lines from C++ when it loads, when it first looks for devices
    and when it first runs some operations (oneDNN, "failed call to cuInit" on a machine
    without a GPU, "oneDNN supports DT_INT32 only on platforms with AVX-512", ...). None of
    them is something a learner can act on. This sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless
    the variable is set already: ``TF_CPP_MIN_LOG_LEVEL=0`` shows everything again), which
    silences the later ones, then imports TensorFlow and lists the devices with the
    process's standard error sent to a temporary file: the lines written before that
    setting is read cannot be silenced otherwise. If the import fails, what was captured is
    written back to standard error with the exception. Python warnings are not touched.

    Returns
    -------
    module
        The ``tensorflow`` module.
    """
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no file descriptor 2 (some IDEs)
        import tensorflow

        return tensorflow
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            # Looking for devices is when TensorFlow reports the CUDA drivers it did not find.
            tensorflow.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow


@dataclass
class TrainedRun:
    """A trained model and everything needed to use it consistently.

    Attributes
    ----------
    model : keras.Model
        The best model of the run (``best.keras``: highest validation mean Dice).
    run_dir : pathlib.Path
        The run folder (`gliseg_nb.train.fit`'s layout).
    config : Config
        The settings the model was trained with.
    split : gliseg_nb.split.CaseSplit
        The case ids of the training, validation and test sets (``split.json``).
    history : dict
        The training log, one list per column of ``history.csv``.
    cases : list of gliseg_nb.data.Case
        Every case with a segmentation found in `data_dir`.
    data_dir : pathlib.Path
        The data folder the model was trained on.
    reused : bool
        True if the run came from the cache, False if it was trained (or finished) now.
    """

    model: object
    run_dir: Path
    config: Config
    split: dict
    history: dict
    cases: list = field(repr=False)
    data_dir: Path = None
    reused: bool = False

    def cases_of(self, subset):
        """The `gliseg_nb.data.Case` objects of one set of the split.

        Parameters
        ----------
        subset : {"train", "val", "test"}

        Returns
        -------
        list of gliseg_nb.data.Case
        """
        from .split import select_cases

        if subset not in ("train", "val", "test"):
            raise ValueError(f"subset must be 'train', 'val' or 'test', got {subset!r}")
        return select_cases(self.cases, self.split[subset])


def runs_dir():
    """The folder cached runs live in: ``$GLISEG_NB_CACHE/runs``, else the OS cache.

    Returns
    -------
    pathlib.Path
        ``$GLISEG_NB_CACHE/runs`` if the environment variable is set, else
        ``pooch.os_cache("gliseg-nb")/runs`` (``~/.cache/gliseg-nb/runs`` on Linux).
    """
    return cache_root() / "runs"


def _data_identity(data_dir, cases, config):
    """What the trained model depends on in the data: which files, of what size and age."""
    files = []
    for case in cases:
        paths = [Path(case.modalities[m]) for m in config.modalities] + [Path(case.seg)]
        for path in dict.fromkeys(paths):  # MSD: one 4-D file holds every modality
            stat = path.stat()
            files.append([case.case_id, path.name, stat.st_size, stat.st_mtime_ns])
    return {"data_dir": str(Path(data_dir).resolve()), "files": files}


def run_key(config, data_identity):
    """A short key of the settings and the data identity: the run folder's name.

    Parameters
    ----------
    config : Config
        Every field counts (model, data and training settings), through `Config.key_dict`:
        fields added later count only when they are not at their default.
    data_identity : dict
        JSON-ready description of the data (folder, files, sizes, modification times).

    Returns
    -------
    str
        ``"<preset>-<16 hex digits>"``.
    """
    payload = {"format": RUN_CACHE_FORMAT, "config": config.key_dict(), "data": data_identity}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"{config.preset}-{digest[:16]}"


def load_or_train(data_dir=None, preset="quick", *, retrain=False, cache_dir=None, verbose="auto",
                  **overrides):
    """A model trained with these settings on this data: from the cache, or trained now.

    The run folder is ``<cache_dir>/<preset>-<key>``, the key made from every setting and
    from the identity of the data (see `run_key`). If that folder holds a finished run, its
    best model is loaded (a few seconds); otherwise the cases are split 68/20/12 by patient
    (`gliseg_nb.split.split_cases`) and `gliseg_nb.train.fit` trains the model, resuming
    an interrupted run where it stopped. Either way the notebooks get the same model, the
    same split and the same settings.

    Parameters
    ----------
    data_dir : str or pathlib.Path or None, default=None
        A BraTS folder in any layout; None uses ``$GLISEG_NB_DATA`` if set, else the
        synthetic dataset (`gliseg_nb.data.get_data_dir`).
    preset : {"quick", "report"}, default="quick"
        Settings to start from (`Config.preset`). ``"quick"`` trains in a minute or two on
        two CPU cores; ``"report"`` is the report's network and is meant for a GPU (hours).
    retrain : bool, default=False
        Delete the cached run with these settings first and train from scratch.
    cache_dir : str or pathlib.Path or None, default=None
        Where run folders live; None means `runs_dir` (``$GLISEG_NB_CACHE/runs`` or the OS
        cache).
    verbose : "auto", 0, 1 or 2, default="auto"
        Keras' progress display while training (not used when the run is reused).
    **overrides
        `Config` fields to change, e.g. ``epochs=3``.

    Returns
    -------
    TrainedRun
        ``model`` (the best checkpoint), ``run_dir``, ``config``, ``split``, ``history``,
        ``cases``, ``data_dir`` and ``reused``.

    Raises
    ------
    ValueError
        If the data folder holds fewer than 3 cases with segmentations (one per set).

    Notes
    -----
    While one process trains a run, the run folder is locked (`gliseg_nb.runs.RunFolder`):
    a second call with the same settings and data, from another notebook say, prints that it
    waits, then reuses the finished run. A cached run whose checkpoint is damaged is trained
    again from scratch, with a warning.
    """
    from .data import find_cases, get_data_dir
    from .split import load_split, select_cases, split_cases
    from .predict import load_trained
    from .train import fit

    config = Config.preset(preset, **overrides)
    data_dir = get_data_dir(data_dir)
    cases = [case for case in find_cases(data_dir) if case.seg is not None]
    if len(cases) < 3:
        raise ValueError(
            f"{data_dir}: a training, a validation and a test set need at least 3 cases with "
            f"segmentations, found {len(cases)}"
        )
    root = user_path(cache_dir) if cache_dir is not None else runs_dir()
    run = RunFolder(root / run_key(config, _data_identity(data_dir, cases, config)))

    # Two notebooks (or kernels) asking for the same model at once: the second waits for the
    # first to finish, then reuses its run, rather than failing or training it twice.
    with run.locked(wait=True, message=_say_waiting):
        if retrain:
            run.clear()
        reused = run.is_complete(config.epochs)
        if not reused:
            problem = run.checkpoint_problem()
            if problem is not None:
                # A cached run that cannot resume (its checkpoint cut short by a power loss,
                # say) is only a cache: train it again rather than fail.
                warnings.warn(f"{problem}; training this cached run again from scratch", stacklevel=2)
                run.clear()
            split = load_split(run.split_path, cases) if run.split_path.is_file() else split_cases(cases, config)
            fit(config, select_cases(cases, split["train"]), select_cases(cases, split["val"]), run.path,
                verbose=verbose, split=split)
        split = load_split(run.split_path, cases)
        model, saved_config = load_trained(run.path)
        history = run.read_history()
    return TrainedRun(
        model=model,
        run_dir=run.path,
        config=saved_config,
        split=split,
        history=history,
        cases=cases,
        data_dir=data_dir,
        reused=reused,
    )


def _say_waiting(text):
    print(f"{text} (another notebook or process is training this model; it is reused once done)",
          flush=True)
