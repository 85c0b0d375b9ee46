"""Training: run folder, resume after a kill, several devices, learning on easy data, the CLI."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import gliseg_nb
from gliseg_nb import Config
from gliseg_nb.train import (
    RunCheckpoint,
    _fit_datasets,
    choose_strategy,
    fit,
    parse_overrides,
    read_history,
)

from layout_fixtures import fixture_case_ids, fixture_labels, write_layout, write_nifti

TESTS_DIR = Path(__file__).parent
# Tiny, fast settings: 32 px, every slice of a 12-slice volume, a 2-level 8-filter U-Net.
# FLAIR and T1ce: the fixtures these tests write hold only those two contrasts.
TINY = dict(image_size=32, depth=2, base_filters=8, slice_start=0, n_slices=12, slice_step=1,
            batch_size=8, augment=False, dropout=0.0, early_stopping_patience=10,
            modalities=("flair", "t1ce"))


def write_contrast_dataset(root, n_cases=6, shape=(32, 32, 12)):
    """A BraTS 2020-layout dataset whose classes are visible in FLAIR and T1ce (learnable)."""
    dataset = write_layout(root, "brats2020", n_cases=n_cases, shape=shape)
    rng = np.random.default_rng(0)
    # Edema bright in FLAIR; enhancing bright and necrosis dark in T1ce, as in real scans.
    flair_level = np.array([100, 160, 220, 170])
    t1ce_level = np.array([100, 60, 110, 230])
    for index, case_id in enumerate(fixture_case_ids("brats2020", n_cases)):
        labels = fixture_labels(shape, index)
        folder = next(dataset.rglob(case_id))
        for modality, levels in (("flair", flair_level), ("t1ce", t1ce_level)):
            image = levels[labels] + rng.normal(0, 12, size=shape)
            write_nifti(folder / f"{case_id}_{modality}.nii.gz", np.clip(image, 1, None).astype(np.int16))
    return dataset


def _random_arrays(rng, n_images, size=32):
    labels = rng.integers(0, 4, size=(n_images, size, size))
    y = np.eye(4, dtype="float32")[labels]
    x = np.stack([labels, labels == 3], -1).astype("float32") + rng.normal(size=(n_images, size, size, 2))
    return x.astype("float32"), y


# -- settings from the command line -----------------------------------------------------------
def test_parse_overrides_converts_to_the_field_types():
    overrides = parse_overrides([
        "epochs=3", "learning_rate=5e-4", "loss=dice", "augment=false", "steps_per_epoch=none",
        "modalities=flair,t2", "class_weights=1,2,2,4", "batch_norm=True",
    ])
    assert overrides == dict(epochs=3, learning_rate=5e-4, loss="dice", augment=False, steps_per_epoch=None,
                             modalities=("flair", "t2"), class_weights=(1.0, 2.0, 2.0, 4.0), batch_norm=True)
    Config.preset("quick", **overrides)  # a valid Config
    for bad, message in [("epochs", "FIELD=VALUE"), ("nonsense=1", "unknown setting"), ("epochs=many", "epochs"),
                         ("augment=maybe", "true or false"), ("class_weights=1,x", "not a number")]:
        with pytest.raises(ValueError, match=message):
            parse_overrides([bad])


# -- run folder, resume with more epochs, checks ----------------------------------------------------
@pytest.mark.slow
def test_fit_writes_the_run_folder(tmp_path, rng):
    import tensorflow as tf

    config = Config.preset("quick", **TINY, epochs=2)
    x, y = _random_arrays(rng, 16)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)  # 2 steps per epoch
    val = tf.data.Dataset.from_tensor_slices(_random_arrays(rng, 8)).batch(8)
    out = tmp_path / "run"
    model, history = _fit_datasets(config, train, val, out, train_cases=["a", "b"], val_cases=["c"], verbose=0)
    assert history["epoch"] == [0, 1]
    for name in ("config.json", "split.json", "run.json", "history.csv", "state.json", "best.keras",
                 "last-epoch-001.keras"):
        assert (out / name).is_file(), name
    assert not (out / "last-epoch-000.keras").exists()  # older checkpoints are removed
    assert Config.load(out / "config.json") == config
    assert json.loads((out / "split.json").read_text())["val"] == ["c"]
    assert json.loads((out / "run.json").read_text())["gliseg_nb_version"] == gliseg_nb.__version__
    assert {"val_dice_mean", "val_dice_class3", "learning_rate", "val_specificity_mean"} <= set(history)
    best = gliseg_nb.load_model(out / "best.keras")
    assert best.count_params() == model.count_params()

    # The training curves figure reads the same log: loss, mean Dice, Dice per class, lr.
    import matplotlib.pyplot as plt

    from gliseg_nb.plotting import plot_history

    figure = plot_history(out)
    loss_ax, dice_ax, class_ax, lr_ax = figure.axes
    np.testing.assert_allclose(loss_ax.lines[1].get_ydata(), history["val_loss"])
    assert len(class_ax.lines) == 6 and lr_ax.get_yscale() == "log"
    assert len(plot_history(history).axes[1].lines) == 2
    plt.close("all")
    with pytest.raises(ValueError, match="no training log"):
        plot_history(tmp_path / "nowhere")

    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2 * 2

    with pytest.raises(ValueError, match="other settings \\(learning_rate\\)"):
        _fit_datasets(config.replace(learning_rate=0.1), train, val, out, verbose=0)
    with pytest.raises(ValueError, match="other training or validation cases"):
        _fit_datasets(config.replace(epochs=1), train, val, out, train_cases=["a"], val_cases=["c"], verbose=0)


def test_fit_traces_the_training_step_once(tmp_path, rng, monkeypatch):
    # Keras traces `train_step` once per graph it builds. Were Adam's variables created
    # inside the first step, TensorFlow would trace it a second time (seconds per run).
    import tensorflow as tf
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traces = []
    original = TensorFlowTrainer.train_step

    def counting_train_step(self, data):
        traces.append(1)
        return original(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counting_train_step)
    config = Config.preset("quick", **TINY, epochs=2)
    x, y = _random_arrays(rng, 16)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    val = tf.data.Dataset.from_tensor_slices(_random_arrays(rng, 8)).batch(8)
    model, _ = _fit_datasets(config, train, val, tmp_path / "run", verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2 * 2  # it did train
    assert len(traces) == 1


def test_run_checkpoint_restores_the_schedule_and_early_stopping_counters(tmp_path):
    reduce_lr = keras.callbacks.ReduceLROnPlateau(patience=2)
    early_stopping = keras.callbacks.EarlyStopping(patience=5)
    state = {"reduce_lr": {"wait": 1, "best": 0.25, "cooldown_counter": 0},
             "early_stopping": {"wait": 3, "best": 0.2, "best_epoch": 4}, "best": {"value": 0.7}}
    checkpoint = RunCheckpoint(tmp_path, reduce_lr=reduce_lr, early_stopping=early_stopping, state=state)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    for callback in (reduce_lr, early_stopping, checkpoint):  # the order fit uses
        callback.set_model(model)
        callback.on_train_begin()
    assert (reduce_lr.wait, reduce_lr.best) == (1, 0.25)
    assert (early_stopping.wait, early_stopping.best, early_stopping.best_epoch) == (3, 0.2, 4)
    # A worse score than the saved best does not replace best.keras.
    checkpoint.on_epoch_end(5, {"val_dice_mean": 0.5, "val_loss": 0.3})
    assert not (tmp_path / "best.keras").exists()
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["epochs_done"] == 6 and saved["last_checkpoint"] == "last-epoch-005.keras"
    checkpoint.on_epoch_end(6, {"val_dice_mean": 0.8, "val_loss": 0.3})
    assert (tmp_path / "best.keras").is_file() and not (tmp_path / "last-epoch-005.keras").exists()


def test_fit_rejects_bad_case_lists(tmp_path):
    with pytest.raises(ValueError, match="training and validation cases"):
        fit(Config.preset("quick"), [], ["x"], tmp_path)
    with pytest.raises(ValueError, match="both in training and validation"):
        fit(Config.preset("quick"), ["a", "b"], ["b"], tmp_path)


# -- resume after a kill, through the real pipeline --------------------------------------------------
RESUME_SCRIPT = """
    import os, sys, keras
    from gliseg_nb import Config
    from gliseg_nb.data import find_cases
    from gliseg_nb.train import fit

    def iterations(model):
        return int(keras.ops.convert_to_numpy(model.optimizer.iterations))

    class KillMidEpoch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            print("TRAIN_BEGIN", iterations(self.model), flush=True)
        def on_epoch_end(self, epoch, logs=None):
            print("EPOCH_END", epoch, iterations(self.model), flush=True)
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == int(os.environ.get("KILL_AT_EPOCH", -1)) and batch == 0:
                os._exit(17)  # as abrupt as a kill: no cleanup, no flush

    cases = find_cases(sys.argv[1])
    config = Config.preset("quick", **{tiny}, epochs=4)
    model, history = fit(config, cases[:3], cases[3:], sys.argv[2], cache_dir=sys.argv[3], verbose=2,
                         callbacks=[KillMidEpoch()])
"""


@pytest.mark.slow
def test_killed_run_resumes_without_losing_or_repeating_epochs(tmp_path):
    data = write_layout(tmp_path / "data", "brats2020", n_cases=4, shape=(32, 32, 12))
    out, cache = tmp_path / "run", tmp_path / "cache"
    code = RESUME_SCRIPT.format(tiny=repr(TINY))
    args = [str(data), str(out), str(cache)]
    script = tmp_path / "train_script.py"
    script.write_text(textwrap.dedent(code))
    # The checkout under test first (not whichever gliseg_nb is installed), then the fixtures.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([str(TESTS_DIR.parent), str(TESTS_DIR)])}
    killed = subprocess.run([sys.executable, str(script), *args], env={**env, "KILL_AT_EPOCH": "2"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == 17, killed.stderr[-2000:]
    assert read_history(out)["epoch"] == [0, 1]
    assert json.loads((out / "state.json").read_text())["epochs_done"] == 2

    resumed = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming" in resumed.stdout and "epoch 3/4" in resumed.stdout
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2", "3"]
    # The resumed session starts from the optimizer state of the last finished epoch (1).
    committed = [line for line in killed.stdout.splitlines() if line.startswith("EPOCH_END 1 ")]
    assert committed and committed[0].split()[-1] != "0"
    assert f"TRAIN_BEGIN {committed[0].split()[-1]}" in resumed.stdout
    split = json.loads((out / "split.json").read_text())
    assert split["train"] == fixture_case_ids("brats2020", 4)[:3]


# -- several devices ----------------------------------------------------------------------------------
MULTI_DEVICE_SCRIPT = """
    import json, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from gliseg_nb import Config
    from gliseg_nb.model import build_unet
    from gliseg_nb.train import _fit_datasets, choose_strategy

    strategy, description = choose_strategy()
    config = Config.preset("quick", **{tiny}, epochs=1)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(16, 32, 32))
    x = (labels[..., None] + rng.normal(size=(16, 32, 32, 2))).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.eye(4, dtype="float32")[labels])).batch(8)
    model, history = _fit_datasets(config, data, data, sys.argv[1], verbose=0)
    print(json.dumps(dict(
        replicas=strategy.num_replicas_in_sync, description=description,
        params=model.count_params(), expected_params=build_unet(config).count_params(),
        layers=[type(layer).__name__ for layer in model.layers],
        expected_layers=[type(layer).__name__ for layer in build_unet(config).layers],
        epochs=history["epoch"], loss=history["loss"][0],
        variable_type=type(model.weights[0].value).__name__,
    )))
"""


@pytest.mark.slow
def test_two_logical_cpus_train_the_same_model_with_a_mirrored_strategy(tmp_path):
    script = tmp_path / "multi.py"
    script.write_text(textwrap.dedent(MULTI_DEVICE_SCRIPT.format(tiny=repr(TINY))))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(TESTS_DIR.parent)}
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["description"] == "MirroredStrategy (2 CPU)"
    assert report["params"] == report["expected_params"]
    assert report["layers"] == report["expected_layers"]
    assert report["epochs"] == [0] and np.isfinite(report["loss"])
    assert report["variable_type"] == "MirroredVariable"


def test_one_device_uses_the_default_strategy():
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1 or len(tf.config.list_logical_devices("CPU")) > 1:
        pytest.skip("several devices: choose_strategy picks MirroredStrategy (tested above)")
    strategy, description = choose_strategy()
    assert strategy.num_replicas_in_sync == 1
    # The machine decides the kind: a GPU machine (Colab, CI with an accelerator) has one GPU.
    assert description == f"default (1 {'GPU' if gpus else 'CPU'})"



@pytest.mark.parametrize("backend, jit_setting, expected", [
    ("tensorflow", False, False), ("tensorflow", True, True), ("jax", False, True), ("torch", False, False)])
def test_models_compile_their_step_on_jax_whatever_the_xla_setting(monkeypatch, backend, jit_setting, expected):
    # On JAX an uncompiled step runs op by op: 18x slower on an H100 (docs/benchmarks.md).
    from gliseg_nb import train

    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    assert train._jit_compile(Config.preset("quick", jit_compile=jit_setting)) is expected

# -- learning, through the command line ---------------------------------------------------------------
@pytest.mark.slow
def test_cli_train_learns_on_easy_data(tmp_path, capsys):
    from gliseg_nb.cli import main

    data = write_contrast_dataset(tmp_path / "data")
    out = tmp_path / "run"
    # 4 epochs of 20 steps (the training stream repeats), enough for these easy contrasts.
    overrides = [f"{key}={','.join(value) if isinstance(value, tuple) else value}"
                 for key, value in TINY.items()] + [
        "epochs=4", "steps_per_epoch=20", "learning_rate=3e-3"]
    argv = ["train", str(data), "--out", str(out), "--preset", "quick"]
    for pair in overrides:
        argv += ["--set", pair]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Validation Dice of the best model: WT" in printed
    history = read_history(out)
    assert history["epoch"] == list(range(4))
    # Learning happens: validation Dice rises from its start and ends above a floor.
    assert history["val_dice_mean"][-1] > history["val_dice_mean"][0]
    assert max(history["val_dice_mean"]) > 0.5
    wt = float(printed.split("best model: WT ")[1].split(",")[0])
    assert wt > 0.7
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) + len(split["val"]) + len(split["test"]) == 6 and split["test"]
    assert Config.load(out / "config.json").learning_rate == 3e-3

    # The same command again: the run is complete, nothing is trained twice, and it says so.
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "already finished" in again and "Trained" not in again
    assert "already complete (4 epoch(s)); nothing was trained" in again
    assert read_history(out)["epoch"] == list(range(4))


def test_resume_drops_log_rows_of_uncommitted_epochs(tmp_path):
    # A kill between the CSV row of epoch 2 and the commit of its state leaves a row that
    # the resumed run will write again: it is dropped (and a line cut short is ignored).
    from gliseg_nb.train import _truncate_history

    log = tmp_path / "history.csv"
    log.write_text("epoch,loss\n0,0.9\n1,0.8\n2,0.7\n3,0.")
    _truncate_history(log, 2)
    assert read_history(log) == {"epoch": [0, 1], "loss": [0.9, 0.8]}
