"""The run folder: every file a training run writes, and the lock that gives it one writer.

`gliseg_nb.train.fit` writes a run into one folder; `gliseg_nb.predict`, `gliseg_nb.course`
and `gliseg_nb.plotting` read it. `RunFolder` is the one place that knows its layout:

==========================  ==============================================================
``config.json``             the settings (`gliseg_nb.Config.save`)
``split.json``              the case ids of each set (`gliseg_nb.split.save_split`)
``run.json``                the versions of gliseg-nb, TensorFlow and Keras, the strategy
``history.csv``             one row per finished epoch: losses, metrics, learning rate
``best.keras``              the model of the best epoch (highest validation mean Dice)
``last-epoch-NNN.keras``    the model, optimiser included, after the last finished epoch
``state.json``              where training stands: written last, atomically, each epoch
``run.lock``                held by the process training into the folder (who, since when)
==========================  ==============================================================

**One writer.** Training takes the folder's lock (`RunFolder.locked`): an operating-system
lock on ``run.lock``, released when the process ends however it ends, so a killed
training never leaves the folder locked. A second training into the same folder gets a
`gliseg_nb.RunError` naming the process that holds it; `gliseg_nb.course.load_or_train`
waits for it instead, then reuses the finished run. Taking the lock also removes the
temporary files a killed process left behind.

**Every file is written atomically** (`gliseg_nb._io.atomic_write`): a reader sees the old
file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import time
import zipfile
from pathlib import Path

from ._io import atomic_write, user_path
from ._locking import FileLock, LockHeld, describe_holder, remove_stale_temporaries
from .errors import RunError

__all__ = [
    "RunFolder",
    "read_history",
    "truncate_history",
    "CONFIG_FILE",
    "SPLIT_FILE",
    "RUN_FILE",
    "HISTORY_FILE",
    "STATE_FILE",
    "BEST_MODEL_FILE",
    "LOCK_FILE",
    "MODEL_FILE_NAMES",
]

CONFIG_FILE = "config.json"
SPLIT_FILE = "split.json"
RUN_FILE = "run.json"
HISTORY_FILE = "history.csv"
STATE_FILE = "state.json"
BEST_MODEL_FILE = "best.keras"
LOCK_FILE = "run.lock"
#: Model files looked for in a run folder, in order of preference.
MODEL_FILE_NAMES = (BEST_MODEL_FILE, "model.keras")
_CHECKPOINT = re.compile(r"last-epoch-(\d+)\.keras")


def read_history(path):
    """Read a ``history.csv`` training log into a dict of lists (numbers as floats).

    Parameters
    ----------
    path : str or pathlib.Path
        The CSV file, or the run folder holding it.

    Returns
    -------
    dict
        ``{"epoch": [0, 1, ...], "loss": [...], "val_dice_mean": [...], ...}``; empty when
        the file does not exist yet. A value that is not a number (a line cut short) is NaN.
    """
    path = user_path(path)
    if path.is_dir():
        path = path / HISTORY_FILE
    if not path.is_file():
        return {}
    history = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                if key is None:  # more fields than the header: not a row csv wrote
                    continue
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = float("nan")
                history.setdefault(key, []).append(int(number) if key == "epoch" and number == number else number)
    return history


def truncate_history(path, n_epochs):
    """Keep the rows of epochs ``0 .. n_epochs - 1`` of a ``history.csv``, each once.

    A line cut short by a kill, or written for an epoch whose state was never committed, is
    dropped; the file is rewritten atomically. A missing or empty file is left alone.

    Parameters
    ----------
    path : str or pathlib.Path
        The CSV file.
    n_epochs : int
        The number of committed epochs.
    """
    path = Path(path)
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    kept, seen = [], set()
    for row in body:
        try:
            epoch = int(float(row[0]))
        except (IndexError, ValueError):
            continue  # a line cut short by the kill
        if epoch < n_epochs and epoch not in seen and len(row) == len(header):
            kept.append(row)
            seen.add(epoch)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(kept)
    with atomic_write(path, newline="") as handle:
        handle.write(buffer.getvalue())


class RunFolder:
    """A training run's folder: its files, its state, its history, its models, its lock.

    Creating a `RunFolder` touches nothing on disk; `locked` creates the folder.

    Parameters
    ----------
    path : str or pathlib.Path
        The folder (``~`` expanded).

    Attributes
    ----------
    path : pathlib.Path
    config_path, split_path, run_info_path, history_path, state_path, best_model_path, lock_path : pathlib.Path
        The files of the layout in the module docstring.

    Examples
    --------
    >>> run = RunFolder("runs/quick")  # doctest: +SKIP
    >>> with run.locked():  # doctest: +SKIP
    ...     run.write_state({"epochs_done": 1, "last_checkpoint": "last-epoch-000.keras"})
    """

    def __init__(self, path):
        self.path = user_path(path)
        self.config_path = self.path / CONFIG_FILE
        self.split_path = self.path / SPLIT_FILE
        self.run_info_path = self.path / RUN_FILE
        self.history_path = self.path / HISTORY_FILE
        self.state_path = self.path / STATE_FILE
        self.best_model_path = self.path / BEST_MODEL_FILE
        self.lock_path = self.path / LOCK_FILE
        self._lock = None

    def __repr__(self):
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self):
        return str(self.path)

    # -- the lock -------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, wait=False, message=print, poll_seconds=1.0):
        """Hold the folder's lock for the duration of a ``with`` block (one writer at a time).

        The folder is created if missing. Once the lock is held, temporary files left in it
        by killed processes are removed (`gliseg_nb._locking.remove_stale_temporaries`).
        The same thread may take the lock again inside the block (re-entrant).

        Parameters
        ----------
        wait : bool, default=False
            False: raise `gliseg_nb.RunError` at once if another process holds the lock.
            True: wait until it is released (saying so once through `message`).
        message : callable, default=print
            Called with one line of text when waiting starts.
        poll_seconds : float, default=1.0
            How often to try again while waiting.

        Yields
        ------
        RunFolder
            This folder.

        Raises
        ------
        gliseg_nb.RunError
            If another process holds the lock and `wait` is False, or the folder cannot be
            created.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunError(f"{self.path}: cannot create the run folder ({error.strerror or error})") from error
        if not self.path.is_dir():
            raise RunError(f"{self.path}: not a folder, cannot hold a run")
        lock = FileLock(self.lock_path)
        said = False
        while True:
            try:
                lock.acquire()
                break
            except LockHeld as held:
                if not wait:
                    raise RunError(
                        f"{self.path}: this run folder is in use by {describe_holder(held.holder)} "
                        f"(lock file {LOCK_FILE}); wait for it to finish, stop it, or choose another folder"
                    ) from held
                if not said:
                    message(f"{self.path}: in use by {describe_holder(held.holder)}; waiting for it to finish...")
                    said = True
                time.sleep(poll_seconds)
            except OSError as error:
                raise RunError(f"{self.lock_path}: cannot lock the run folder ({error.strerror or error})") from error
        try:
            if not lock.reentered:
                remove_stale_temporaries(self.path)
            yield self
        finally:
            lock.release()

    def holder(self):
        """Who holds (or last held) the lock: ``{"pid", "host", "since", "command"}``, or {}."""
        return FileLock(self.lock_path).read_holder()

    # -- state and history --------------------------------------------------------------------
    def read_state(self):
        """The saved training state (``state.json``), or None when there is none yet.

        Raises
        ------
        gliseg_nb.RunError
            If the file exists but cannot be read as JSON.
        """
        if not self.state_path.is_file():
            return None
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RunError(f"{self.state_path}: cannot read the training state ({error})") from error
        if not isinstance(state, dict):
            raise RunError(f"{self.state_path}: not a training state (expected a JSON object)")
        return state

    def write_state(self, state):
        """Write ``state.json`` atomically: the commit point of an epoch."""
        self._write_json(self.state_path, state)

    def epochs_done(self):
        """How many epochs the saved state records as finished (0 without a state)."""
        try:
            state = self.read_state()
        except RunError:
            return 0
        return int(state.get("epochs_done", 0)) if state else 0

    def is_complete(self, epochs):
        """Whether the run finished (all `epochs` done, or stopped early) and has ``best.keras``.

        A run killed after its last epoch but before it was marked finished is complete too.

        Parameters
        ----------
        epochs : int
            The number of epochs asked for (``config.epochs``).

        Returns
        -------
        bool
        """
        try:
            state = self.read_state()
        except RunError:
            return False
        if not state:
            return False
        done = state.get("stopped_early") or int(state.get("epochs_done", 0)) >= int(epochs)
        return bool(done) and self.best_model_path.is_file()

    def read_history(self):
        """The training log, one list per column of ``history.csv`` (see `read_history`)."""
        return read_history(self.history_path)

    def truncate_history(self, n_epochs):
        """Keep the rows of epochs ``0 .. n_epochs - 1`` (each once): drop uncommitted epochs.

        A line cut short by a kill, or written for an epoch whose state was never committed,
        is dropped; the file is rewritten atomically.
        """
        truncate_history(self.history_path, n_epochs)

    def read_run_info(self):
        """``run.json`` as a dict (empty when missing or unreadable)."""
        try:
            info = json.loads(self.run_info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def write_run_info(self, info):
        """Write ``run.json`` atomically."""
        self._write_json(self.run_info_path, info)

    @staticmethod
    def _write_json(path, payload):
        with atomic_write(path) as handle:
            handle.write(json.dumps(payload, indent=2) + "\n")

    # -- models ---------------------------------------------------------------------------------
    def checkpoint_path(self, epoch):
        """``last-epoch-NNN.keras`` of a (0-based) epoch."""
        return self.path / f"last-epoch-{int(epoch):03d}.keras"

    def save_model(self, model, path):
        """Save a Keras model to `path` (in this folder) atomically, fsynced."""
        with atomic_write(path, mode=None, suffix=".keras") as tmp:
            model.save(tmp)  # Keras insists on the .keras suffix, which the temporary keeps
        return Path(path)

    def last_checkpoint(self):
        """The checkpoint the saved state names (a path, maybe missing), or None without a state."""
        state = self.read_state()
        if not state or not state.get("last_checkpoint"):
            return None
        return self.path / state["last_checkpoint"]

    def checkpoint_problem(self):
        """What is wrong with the checkpoint a resume would load, or None if it looks sound.

        Checks that the file exists, is not empty, is a complete zip archive (a ``.keras``
        file is one) and that every member passes its CRC check, so a file cut short by a
        power loss or a full disk is found before Keras fails on it.

        Returns
        -------
        str or None
            A one-line description naming the file, or None (also when there is no state).
        """
        path = self.last_checkpoint()
        if path is None:
            return None
        if not path.is_file():
            return f"{path}: the checkpoint state.json names is missing"
        size = path.stat().st_size
        if size == 0:
            return f"{path}: the checkpoint is empty (0 bytes)"
        if not zipfile.is_zipfile(path):
            return f"{path}: the checkpoint is truncated or not a .keras file ({size} bytes)"
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (OSError, zipfile.BadZipFile, EOFError) as error:
            return f"{path}: the checkpoint cannot be read ({error})"
        if bad is not None:
            return f"{path}: the checkpoint is corrupted ({bad} fails its CRC check)"
        return None

    def check_checkpoint(self):
        """Raise `gliseg_nb.RunError` if the checkpoint a resume would load is unusable.

        The previous epoch's checkpoint is deleted once the next one is committed, so there
        is no older one to fall back on honestly; the message says what to do instead.
        """
        problem = self.checkpoint_problem()
        if problem is None:
            return
        advice = f"delete {self.path} (or choose another folder) to train from scratch"
        if self.best_model_path.is_file():
            advice += f"; {BEST_MODEL_FILE} is still usable for predictions"
        raise RunError(f"{problem}, so the run cannot be resumed: {advice}")

    def find_model_file(self):
        """The model file to use from this folder.

        Looks for `MODEL_FILE_NAMES` in order (``best.keras``, the best epoch), then for the
        latest ``last-epoch-NNN.keras`` checkpoint, then for a single ``.keras`` file. Hidden
        (temporary) files are ignored.

        Returns
        -------
        pathlib.Path

        Raises
        ------
        gliseg_nb.errors.RunError
            If the folder holds no ``.keras`` file, or several and none of the known names.
        """
        for name in MODEL_FILE_NAMES:
            if (self.path / name).is_file():
                return self.path / name
        candidates = sorted(path for path in self.path.glob("*.keras") if not path.name.startswith("."))
        checkpoints = [path for path in candidates if _CHECKPOINT.fullmatch(path.name)]
        if checkpoints:
            return max(checkpoints, key=lambda path: int(_CHECKPOINT.fullmatch(path.name).group(1)))
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise RunError(f"{self.path}: no .keras model file in this run folder")
        names = ", ".join(path.name for path in candidates)
        raise RunError(f"{self.path}: several model files ({names}); pass the one to use")

    # -- starting over ----------------------------------------------------------------------------
    def clear(self):
        """Delete everything in the folder but its lock file (call while holding the lock).

        The lock file stays: deleting it would let another process lock a new file of the
        same name while this one still holds the old.
        """
        import shutil

        if not self.path.is_dir():
            return
        for child in self.path.iterdir():
            if child.name == LOCK_FILE:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def remove_stale_temporaries(self):
        """Remove temporary files left by killed processes (done when the lock is taken)."""
        return remove_stale_temporaries(self.path)
