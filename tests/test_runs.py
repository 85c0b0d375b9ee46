"""The run folder: one writer at a time (a lock), stale locks and temporaries, bad checkpoints."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from gliseg_nb import Config, RunError, RunFolder
from gliseg_nb import _locking

TINY = dict(image_size=16, depth=1, base_filters=4, batch_size=8, augment=False, dropout=0.0,
            early_stopping_patience=10, modalities=("flair", "t1ce"))  # two channels, as _tiny_datasets

HOLD_LOCK = """
    import sys, time
    from gliseg_nb.runs import RunFolder
    with RunFolder(sys.argv[1]).locked():
        print("LOCKED", flush=True)
        time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def lock_holder(tmp_path):
    """Start a process that holds a run folder's lock; yields a function (folder, seconds) -> Popen."""
    script = tmp_path / "hold_lock.py"
    script.write_text(textwrap.dedent(HOLD_LOCK))
    started = []

    def start(folder, seconds=120):
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
        process = subprocess.Popen([sys.executable, str(script), str(folder), str(seconds)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        line = process.stdout.readline()
        assert line.strip() == "LOCKED", process.stderr.read()
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _tiny_datasets(n_images=8):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(n_images, 16, 16))
    x = (labels[..., None] + rng.normal(size=(n_images, 16, 16, 2))).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.eye(4, dtype="float32")[labels])).batch(8)
    return data, data


# -- the lock ------------------------------------------------------------------------------------
def test_a_second_training_into_a_locked_folder_is_a_clear_error(tmp_path, lock_holder):
    from gliseg_nb.train import _fit_datasets

    out = tmp_path / "run"
    holder = lock_holder(out)
    train, val = _tiny_datasets()
    with pytest.raises(RunError) as raised:
        _fit_datasets(Config.preset("quick", **TINY, epochs=1), train, val, out, verbose=0)
    message = str(raised.value)
    assert str(out) in message and f"process {holder.pid}" in message
    assert repr(socket.gethostname()) in message and " since " in message and "\n" not in message
    # Nothing of the refused run was written: no settings, no history, no state.
    assert sorted(path.name for path in out.iterdir()) == ["run.lock"]


def test_the_lock_is_released_on_exit_and_a_killed_holders_lock_is_taken_over(tmp_path, lock_holder):
    out = tmp_path / "run"
    holder = lock_holder(out)
    assert RunFolder(out).holder()["pid"] == holder.pid
    holder.kill()  # SIGKILL: no clean-up runs, the lock file stays with the dead pid in it
    holder.wait(timeout=30)
    assert RunFolder(out).holder()["pid"] == holder.pid
    with RunFolder(out).locked() as run:
        assert run.holder()["pid"] == os.getpid()
    # Released at the end of the block: a process can take it at once.
    lock_holder(out, seconds=0).wait(timeout=60)


def test_another_thread_cannot_take_a_held_lock_but_the_holder_can_again(tmp_path):
    run = RunFolder(tmp_path / "run")
    errors = []

    def other_thread():
        try:
            with run.locked():
                pass
        except RunError as error:
            errors.append(error)

    with run.locked():
        with run.locked():  # re-entrant: load_or_train holds it while fit takes it
            pass
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert len(errors) == 1 and "in use by process" in str(errors[0])
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert len(errors) == 1  # free again once released


def test_waiting_for_the_lock_says_so_once(tmp_path, lock_holder):
    out = tmp_path / "run"
    holder = lock_holder(out, seconds=1.5)
    said = []
    started = time.monotonic()
    with RunFolder(out).locked(wait=True, message=said.append, poll_seconds=0.1):
        waited = time.monotonic() - started
    holder.wait(timeout=30)
    assert len(said) == 1 and f"process {holder.pid}" in said[0] and "waiting" in said[0]
    assert waited > 0.2  # it did wait for the holder (which sleeps 1.5 s)


def test_without_os_locks_a_dead_holder_is_taken_over_and_a_live_one_is_not(tmp_path, monkeypatch):
    # Some network file systems offer no locks: the holder's details in the file decide.
    monkeypatch.setattr(_locking, "fcntl", None)
    monkeypatch.setattr(_locking, "msvcrt", None)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead_pid = int(finished.stdout)
    run.lock_path.write_text(json.dumps({"pid": dead_pid, "host": socket.gethostname(), "since": "then"}))
    with run.locked():
        assert run.holder()["pid"] == os.getpid()
    run.lock_path.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "since": "now"}))
    with pytest.raises(RunError, match=f"process {os.getppid()}"):
        with run.locked():
            pass


def test_a_run_folder_that_is_a_file_is_a_clear_error(tmp_path):
    path = tmp_path / "run"
    path.write_text("not a folder")
    with pytest.raises(RunError, match="run"):
        with RunFolder(path).locked():
            pass


# -- temporaries of killed processes -----------------------------------------------------------------
def test_taking_the_lock_removes_temporaries_of_dead_processes(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead = int(finished.stdout)
    alive_other = os.getppid()
    names = {
        f".last-epoch-003.keras.tmp-{dead}-1a2b3c4d.keras": False,  # a killed checkpoint write
        f"state.json.tmp-{dead}": False,  # the older naming scheme
        f".history.csv.tmp-{alive_other}-00000000": True,  # a live process: kept (recent)
        f".best.keras.tmp-{os.getpid()}-11111111.keras": True,  # this process: kept
        f".old.keras.tmp-{alive_other}-22222222.keras": False,  # live pid, but 2 h old
    }
    for name in names:
        (run.path / name).write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(run.path / f".old.keras.tmp-{alive_other}-22222222.keras", (two_hours_ago, two_hours_ago))
    (run.path / "best.keras").write_bytes(b"kept")
    with run.locked():
        pass
    for name, kept in names.items():
        assert (run.path / name).exists() == kept, name
    assert (run.path / "best.keras").exists()


# -- checkpoints -----------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_checkpoint_is_a_clear_error_naming_it(tmp_path, damage):
    from gliseg_nb.train import _fit_datasets

    out = tmp_path / "run"
    train, val = _tiny_datasets()
    config = Config.preset("quick", **TINY, epochs=1)
    _fit_datasets(config, train, val, out, verbose=0)
    checkpoint = out / "last-epoch-000.keras"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    problem = RunFolder(out).checkpoint_problem()
    assert problem.startswith(str(checkpoint)) and ("0 bytes" if damage == "empty" else "truncated") in problem
    with pytest.raises(RunError) as raised:
        _fit_datasets(config.replace(epochs=2), train, val, out, verbose=0)
    message = str(raised.value)
    assert str(checkpoint) in message and "cannot be resumed" in message and f"delete {out}" in message
    assert "best.keras is still usable" in message


def test_state_history_and_model_lookup(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert run.read_state() is None and run.epochs_done() == 0 and not run.is_complete(1)
    with run.locked():
        run.write_state({"epochs_done": 2, "last_checkpoint": "last-epoch-001.keras"})
        run.history_path.write_text("epoch,loss\n0,0.9\n1,0.8\n2,0.")
        run.truncate_history(2)
    assert run.epochs_done() == 2 and run.read_history() == {"epoch": [0, 1], "loss": [0.9, 0.8]}
    assert not run.is_complete(2)  # no best.keras yet
    for name in ("last-epoch-009.keras", "last-epoch-010.keras", ".last-epoch-011.keras.tmp-1-0.keras"):
        (run.path / name).write_bytes(b"x")
    assert run.find_model_file().name == "last-epoch-010.keras"
    run.best_model_path.write_bytes(b"x")
    assert run.is_complete(2) and not run.is_complete(3)
    assert run.find_model_file() == run.best_model_path
    run.state_path.write_text("{not json")
    with pytest.raises(RunError, match="state.json: cannot read"):
        run.read_state()
