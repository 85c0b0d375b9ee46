"""Bad input to the command line: one line naming the file and the problem, exit status 2,
no traceback, and nothing half-written or silently mixed on disk.

Each test runs the command in-process (`gliseg_nb.cli.main`) on tiny fixtures. The models are
untrained 16-pixel U-Nets: a prediction takes a fraction of a second.
"""

import json
import os

import nibabel as nib
import numpy as np
import pytest

from gliseg_nb import ConfigError, DataError, RunError
from gliseg_nb import predict as predict_module
from gliseg_nb.cli import main
from layout_fixtures import write_layout
from test_predict import _tiny_run_folder, make_dataset, tiny_config


def run_cli(capsys, *argv):
    """Run ``gliseg-nb ARGV`` in-process: (exit status, stdout, stderr)."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, command, *fragments):
    """Exit 2 and exactly one stderr line ``gliseg-nb COMMAND: error: ...`` holding `fragments`."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gliseg-nb {command}: error: "), lines[0]
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])


@pytest.fixture
def tiny_predict_setup(tmp_path):
    """A run folder (untrained tiny model) and a two-case BraTS 2020 dataset."""
    config = tiny_config()
    dataset = make_dataset(tmp_path, n_cases=2)
    run = _tiny_run_folder(tmp_path, config)
    return run, dataset


@pytest.fixture
def no_prediction(monkeypatch):
    """Fail the test if any case is predicted (the check must come first)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a case was predicted before the output folder was checked")

    monkeypatch.setattr(predict_module, "predict_case", refuse)


# -- --debug ---------------------------------------------------------------------------------
def test_debug_shows_the_traceback_instead_of_one_line(tmp_path, capsys):
    with pytest.raises(DataError, match="folder does not exist"):
        main(["--debug", "cases", str(tmp_path / "absent")])
    with pytest.raises(DataError, match="folder does not exist"):
        main(["cases", str(tmp_path / "absent"), "--debug"])  # after the command too


# -- output paths: a file, below a file, not writable ------------------------------------------
def test_predict_out_is_a_file_fails_before_predicting(tiny_predict_setup, tmp_path, capsys, no_prediction):
    run, dataset = tiny_predict_setup
    target = tmp_path / "taken"
    target.write_text("not a folder")
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", target)
    assert_one_line_error(code, err, "predict", target, "is a file, not a folder")
    assert target.read_text() == "not a folder"


def test_predict_out_below_a_file_fails_before_predicting(tiny_predict_setup, tmp_path, capsys, no_prediction):
    run, dataset = tiny_predict_setup
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", blocker / "preds")
    assert_one_line_error(code, err, "predict", blocker / "preds", "a path above it is a file")


def test_unwritable_output_folder_is_one_line(tiny_predict_setup, tmp_path, capsys, monkeypatch, no_prediction):
    # Root writes into read-only folders, so the refusal is simulated where the probe file
    # is opened: the error the OS gives for a read-only folder or file system.
    from gliseg_nb import _io

    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path))

    run, dataset = tiny_predict_setup
    out = tmp_path / "readonly"
    out.mkdir()
    real_open = open
    monkeypatch.setattr(_io, "open", lambda path, *a, **k: read_only(path) if "write-test" in str(path)
                        else real_open(path, *a, **k), raising=False)
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", out)
    assert_one_line_error(code, err, "predict", out, "cannot write into the predictions folder",
                          "Permission denied")


def test_train_out_is_a_file_and_train_data_is_a_file(tmp_path, capsys):
    dataset = write_layout(tmp_path / "data", "brats2020", n_cases=2)
    target = tmp_path / "run"
    target.write_text("")
    code, _, err = run_cli(capsys, "train", dataset, "--out", target)
    assert_one_line_error(code, err, "train", target, "run folder is a file")
    code, _, err = run_cli(capsys, "train", target, "--out", tmp_path / "elsewhere")
    assert_one_line_error(code, err, "train", target, "is a file; train needs the folder")
    assert not (tmp_path / "elsewhere").exists()


def test_show_out_is_a_folder_or_below_a_file(tmp_path, capsys):
    dataset = write_layout(tmp_path / "data", "brats2021", n_cases=1)
    folder = tmp_path / "figures"
    folder.mkdir()
    code, _, err = run_cli(capsys, "show", dataset, "--out", folder)
    assert_one_line_error(code, err, "show", folder, "image file is a folder")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "show", dataset, "--out", blocker / "case.png")
    assert_one_line_error(code, err, "show", blocker, "is a file, not a folder")
    assert list(folder.iterdir()) == []


def test_synth_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "synthetic"
    target.write_text("")
    code, _, err = run_cli(capsys, "synth", target, "--cases", 1, "--quiet")
    assert_one_line_error(code, err, "synth", target, "is a file, not a folder")


def test_evaluate_csv_is_a_folder_leaves_nothing_behind(tmp_path, capsys):
    from test_evaluation import _write_cases, _write_predictions

    truths = _write_cases(tmp_path, np.random.default_rng(0), n_cases=1)
    pred_dir = _write_predictions(tmp_path, truths)
    folder = tmp_path / "scores"
    folder.mkdir()
    code, out, err = run_cli(capsys, "evaluate", pred_dir, tmp_path / "data", "--csv", folder)
    assert_one_line_error(code, err, "evaluate", folder, "CSV file is a folder")
    assert out == ""  # refused before scoring
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "pred", "scores"]  # no scores.tmp
    assert list(folder.iterdir()) == []


def test_write_scores_csv_cleans_up_after_a_failed_write(tmp_path, monkeypatch):
    from gliseg_nb.metrics import evaluation

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    rows = [{"case_id": "a", "scores": {r: {m: 0.5 for m in evaluation.METRIC_NAMES}
                                        for r in ("WT", "TC", "ET")}}]
    path = tmp_path / "scores.csv"
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(RunError, match="scores.csv: cannot write the CSV file"):
        evaluation.write_scores_csv(rows, path)
    assert list(tmp_path.iterdir()) == []


# -- numeric options and settings -------------------------------------------------------------
@pytest.mark.parametrize("option, value, message", [
    ("--batch-size", 0, "batch_size must be an integer >= 1, got 0"),
    ("--batch-size", -3, "batch_size must be an integer >= 1, got -3"),
    ("--min-et-voxels", -1, "min_et_voxels must be an integer >= 0, got -1"),
    ("--min-component-voxels", -5, "min_component_voxels must be an integer >= 0, got -5"),
])
def test_predict_non_positive_options_are_refused(tiny_predict_setup, tmp_path, capsys, no_prediction,
                                                  option, value, message):
    run, dataset = tiny_predict_setup
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", tmp_path / "p", option, value)
    assert_one_line_error(code, err, "predict", message)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("setting, message", [
    ("epochs=0", "epochs must be at least 1, got 0"),
    ("batch_size=0", "batch_size must be at least 1, got 0"),
    ("learning_rate=-1", "learning_rate must be a positive number"),
    ("steps_per_epoch=0", "steps_per_epoch must be at least 1 or None"),
    ("class_weights=1,2", "class_weights needs one weight per class (4), got 2"),
    ("epochs=three", "--set epochs: cannot read 'three' as int"),
    ("nonsense=1", "--set: unknown setting 'nonsense'"),
    ("epochs", "--set expects FIELD=VALUE"),
])
def test_train_bad_settings_are_one_line(tmp_path, capsys, setting, message):
    dataset = write_layout(tmp_path / "data", "brats2020", n_cases=2)
    code, _, err = run_cli(capsys, "train", dataset, "--out", tmp_path / "run", "--set", setting)
    assert_one_line_error(code, err, "train", message)
    assert not (tmp_path / "run").exists()


def test_synth_non_positive_counts_are_refused(tmp_path, capsys):
    code, _, err = run_cli(capsys, "synth", tmp_path / "s", "--cases", 0)
    assert_one_line_error(code, err, "synth", "--cases must be at least 1, got 0")
    code, _, err = run_cli(capsys, "synth", tmp_path / "s", "--workers", 0)
    assert_one_line_error(code, err, "synth", "--workers must be at least 1, got 0")


def test_config_errors_are_config_errors(tmp_path):
    from gliseg_nb import Config

    with pytest.raises(ConfigError, match="epochs must be int, got 'x'"):
        Config.preset("quick", epochs="x")
    with pytest.raises(ConfigError, match=r"Unknown Config field\(s\): \['epoch'\]"):
        Config.preset("quick", epoch=3)
    broken = tmp_path / "config.json"
    broken.write_text('{"epochs": ')
    with pytest.raises(ConfigError, match="config.json: cannot read settings"):
        Config.load(broken)
    broken.write_text('{"epochs": 0}')
    with pytest.raises(ConfigError, match="config.json: epochs must be at least 1"):
        Config.load(broken)
    with pytest.raises(ConfigError, match="settings file not found"):
        Config.load(tmp_path / "absent.json")


def test_predict_with_a_broken_config_file_is_one_line(tiny_predict_setup, tmp_path, capsys, no_prediction):
    run, dataset = tiny_predict_setup
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2")
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", tmp_path / "p", "--config", broken)
    assert_one_line_error(code, err, "predict", broken, "cannot read settings")


# -- model files -------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "zero", "garbage"])
def test_damaged_model_file_names_the_file(tiny_predict_setup, tmp_path, capsys, no_prediction, damage):
    run, dataset = tiny_predict_setup
    model = run / "best.keras"
    data = model.read_bytes()
    if damage == "truncate":
        model.write_bytes(data[: len(data) // 2])
    elif damage == "zero":
        model.write_bytes(b"")
    else:
        model.write_bytes(b"not a zip archive" * 100)
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", tmp_path / "p")
    assert_one_line_error(code, err, "predict", model, "not a complete .keras file")
    assert "File not found" not in err


def test_model_file_of_another_kind_is_named(tiny_predict_setup, tmp_path, capsys, no_prediction):
    run, dataset = tiny_predict_setup
    weights = run / "model.h5"
    weights.write_bytes(b"\x89HDF")
    code, _, err = run_cli(capsys, "predict", weights, dataset, "--out", tmp_path / "p")
    assert_one_line_error(code, err, "predict", weights, "not a .keras model file")


# -- the predictions manifest --------------------------------------------------------------------
def _second_run(tmp_path, config):
    other = tmp_path / "other"
    other.mkdir()
    run = _tiny_run_folder(other, config, favoured_class=2)
    return run


def test_predict_writes_a_manifest_naming_the_model(tiny_predict_setup, tmp_path, capsys):
    run, dataset = tiny_predict_setup
    out = tmp_path / "p"
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", out)
    assert code == 0, err
    manifest = json.loads((out / "predictions.json").read_text())
    assert manifest["model"]["path"] == str((run / "best.keras").resolve())
    import hashlib

    assert manifest["model"]["sha256"] == hashlib.sha256((run / "best.keras").read_bytes()).hexdigest()
    assert manifest["complete"] is True
    assert manifest["config"]["image_size"] == 16
    assert sorted(manifest["files"].values()) == sorted(p.name for p in out.glob("*.nii.gz"))
    assert manifest["options"] == {"labels": "release", "tta": "all", "min_et_voxels": 0,
                                   "min_component_voxels": 1000, "nan_policy": "raise"}
    # The same model again (a resumed or repeated run) is allowed and leaves one model's files.
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", out)
    assert code == 0, err


def test_predicting_another_model_into_a_folder_is_refused_then_overwritten(tiny_predict_setup, tmp_path,
                                                                           capsys):
    run, dataset = tiny_predict_setup
    out = tmp_path / "p"
    assert run_cli(capsys, "predict", run, dataset, "--out", out)[0] == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.nii.gz")}
    other = _second_run(tmp_path, tiny_config())

    code, _, err = run_cli(capsys, "predict", other, dataset, "--out", out,
                           "--case", sorted(n[:-7] for n in before)[0])
    assert_one_line_error(code, err, "predict", out, "holds predictions of another model", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.glob("*.nii.gz")} == before  # untouched

    # --overwrite with one case: the other model's files are removed first, not mixed.
    first = sorted(before)[0]
    code, _, err = run_cli(capsys, "predict", other, dataset, "--out", out, "--case", first[:-7],
                           "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [first]
    assert (out / first).read_bytes() != before[first]
    manifest = json.loads((out / "predictions.json").read_text())
    assert manifest["model"]["path"] == str((other / "best.keras").resolve())


def test_other_options_count_as_another_writer(tiny_predict_setup, tmp_path, capsys):
    run, dataset = tiny_predict_setup
    out = tmp_path / "p"
    assert run_cli(capsys, "predict", run, dataset, "--out", out)[0] == 0
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", out, "--labels", "internal")
    assert_one_line_error(code, err, "predict", "holds predictions of another model or options")


def test_folder_of_unknown_predictions_is_refused_without_overwrite(tiny_predict_setup, tmp_path, capsys):
    run, dataset = tiny_predict_setup
    out = tmp_path / "p"
    out.mkdir()
    (out / "someone_else.nii.gz").write_bytes(b"")
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", out)
    assert_one_line_error(code, err, "predict", "1 prediction file(s) without a predictions.json")
    assert run_cli(capsys, "predict", run, dataset, "--out", out, "--overwrite")[0] == 0
    assert not (out / "someone_else.nii.gz").exists()


def test_interrupted_predict_is_detectable_and_evaluate_says_so(tiny_predict_setup, tmp_path, capsys,
                                                                monkeypatch):
    run, dataset = tiny_predict_setup
    out = tmp_path / "p"
    real_write = predict_module.write_prediction
    calls = []

    def write_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C after the first case was written
        return real_write(*args, **kwargs)

    monkeypatch.setattr(predict_module, "write_prediction", write_then_die)
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", out)
    assert code == 130 and "interrupted" in err
    manifest = json.loads((out / "predictions.json").read_text())
    assert manifest["complete"] is False and len(manifest["files"]) == 2
    assert len(list(out.glob("*.nii.gz"))) == 1

    code, stdout, err = run_cli(capsys, "evaluate", out, dataset, "--json")
    assert code == 0, err
    assert len(json.loads(stdout)["cases"]) == 1
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert "did not finish" in lines[0] and "no prediction for 1 of 2 case(s)" in lines[1]


def test_evaluate_refuses_a_folder_mixing_two_models(tiny_predict_setup, tmp_path, capsys):
    run, dataset = tiny_predict_setup
    out = tmp_path / "p"
    first_case = sorted(c.name for c in dataset.iterdir() if c.is_dir())[0]
    assert run_cli(capsys, "predict", run, dataset, "--out", out, "--case", first_case)[0] == 0
    # Another model's file copied in by hand (the manifest does not list it).
    elsewhere = tmp_path / "elsewhere"
    other = _second_run(tmp_path, tiny_config())
    assert run_cli(capsys, "predict", other, dataset, "--out", elsewhere)[0] == 0
    stray = sorted(elsewhere.glob("*.nii.gz"))[1]
    (out / stray.name).write_bytes(stray.read_bytes())
    code, _, err = run_cli(capsys, "evaluate", out, dataset)
    assert_one_line_error(code, err, "evaluate", out, "holds predictions of more than one model", stray.name)
    # Predicting again with the first model does not adopt the stray file either.
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", out)
    assert_one_line_error(code, err, "predict", out, "1 prediction file(s) its predictions.json does not list")


# -- paths with ~ --------------------------------------------------------------------------------
def test_tilde_is_expanded_for_every_output_path(tiny_predict_setup, tmp_path, capsys, monkeypatch):
    run, dataset = tiny_predict_setup
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "predict", run, dataset, "--out", "~/preds")[0] == 0
    assert len(list((home / "preds").glob("*.nii.gz"))) == 2
    code, _, err = run_cli(capsys, "evaluate", "~/preds", dataset, "--csv", "~/scores/s.csv")
    assert code == 0, err
    assert (home / "scores" / "s.csv").is_file()
    assert run_cli(capsys, "show", dataset, "--out", "~/case.png")[0] == 0
    assert (home / "case.png").is_file()
    assert run_cli(capsys, "synth", "~/synthetic", "--cases", 0)[0] == 2  # refused, but expanded:
    assert not (tmp_path / "~").exists()  # no folder literally named "~"


def test_train_out_tilde_is_expanded(tmp_path, capsys, monkeypatch):
    from gliseg_nb import train

    def stop(config, train_cases, val_cases, out_dir, **kwargs):
        raise RunError(f"stopped at {out_dir}")

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train, "fit", stop)
    dataset = write_layout(tmp_path / "data", "brats2020", n_cases=3)
    code, _, err = run_cli(capsys, "train", dataset, "--out", "~/run")
    assert_one_line_error(code, err, "train", f"stopped at {home / 'run'}")
    assert not (tmp_path / "~").exists()


# -- corrupt inputs ------------------------------------------------------------------------------
def test_evaluate_prediction_with_a_bad_header_is_one_line(tmp_path, capsys):
    from test_evaluation import _write_cases

    truths = _write_cases(tmp_path, np.random.default_rng(0), n_cases=1)
    (case_id, (truth, affine)), = truths.items()
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    path = pred_dir / f"{case_id}.nii"
    nib.save(nib.Nifti1Image(truth, affine), path)
    raw = bytearray(path.read_bytes())
    raw[70:72] = np.int16(1234).tobytes()  # datatype code nibabel does not know
    path.write_bytes(bytes(raw))
    # --json: no progress bar on stderr, so the error is all there is.
    code, _, err = run_cli(capsys, "evaluate", pred_dir, tmp_path / "data", "--json")
    assert_one_line_error(code, err, "evaluate", path, "not a readable prediction", "HeaderDataError")


def test_tour_without_notebooks_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "tour", "--notebooks", tmp_path / "absent", "--out", tmp_path / "b")
    assert_one_line_error(code, err, "tour", tmp_path / "absent", "no notebook folder here")


def test_evaluate_predictions_path_is_a_file(tmp_path, capsys):
    dataset = write_layout(tmp_path / "data", "brats2020", n_cases=1)
    target = tmp_path / "pred"
    target.write_text("")
    code, _, err = run_cli(capsys, "evaluate", target, dataset)
    assert_one_line_error(code, err, "evaluate", target, "the predictions folder is a file")


def test_show_slice_out_of_range_and_tour_timeout(tmp_path, capsys):
    dataset = write_layout(tmp_path / "data", "brats2021", n_cases=1)
    code, _, err = run_cli(capsys, "show", dataset, "--slice", 999, "--out", tmp_path / "c.png")
    assert_one_line_error(code, err, "show", "slice 999 outside 0-")
    assert not (tmp_path / "c.png").exists()
    code, _, err = run_cli(capsys, "tour", "--timeout", 0, "--out", tmp_path / "b")
    assert_one_line_error(code, err, "tour", "timeout must be at least 1 second, got 0")


def test_predict_unknown_case_is_one_line(tiny_predict_setup, tmp_path, capsys, no_prediction):
    run, dataset = tiny_predict_setup
    code, _, err = run_cli(capsys, "predict", run, dataset, "--out", tmp_path / "p", "--case", "nobody")
    assert_one_line_error(code, err, "predict", dataset, "no case(s) nobody")
    assert not (tmp_path / "p").exists()
