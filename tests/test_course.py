"""`gliseg_nb.course.load_or_train`: train once, reuse after, retrain when anything changes."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gliseg_nb import Config
from gliseg_nb.course import (_data_identity, demo_case, format_settings, load_or_train, run_key,
                              runs_dir)
from gliseg_nb.data import find_cases

from layout_fixtures import write_layout

# Tiny settings: 16 px, a 1-level 4-filter U-Net, 2 epochs on 5 small cases: seconds.
TINY = dict(image_size=16, depth=1, base_filters=4, slice_start=2, n_slices=8, slice_step=2,
            batch_size=8, augment=False, dropout=0.0, epochs=2)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private GLISEG_NB_CACHE (runs and slices) and a small BraTS 2020 dataset."""
    root = tmp_path_factory.mktemp("course")
    saved = os.environ.get("GLISEG_NB_CACHE")
    os.environ["GLISEG_NB_CACHE"] = str(root / "cache")
    yield root
    if saved is None:
        os.environ.pop("GLISEG_NB_CACHE", None)
    else:
        os.environ["GLISEG_NB_CACHE"] = saved


@pytest.fixture(scope="module")
def dataset(cache):
    return write_layout(cache / "data", "brats2020", n_cases=5, shape=(24, 24, 12))


@pytest.fixture(scope="module")
def first_run(dataset):
    return load_or_train(dataset, verbose=0, **TINY)


@pytest.mark.slow
def test_trains_into_the_cache(first_run, cache):
    assert not first_run.reused
    assert first_run.run_dir.parent == cache / "cache" / "runs"
    assert first_run.run_dir.name.startswith("quick-")
    assert (first_run.run_dir / "best.keras").is_file()
    assert (cache / "cache" / "slices").is_dir()  # the slice cache went there too
    assert first_run.config.image_size == 16 and first_run.config.epochs == 2
    assert first_run.history["epoch"] == [0, 1]
    assert first_run.model.output_shape == (None, 16, 16, 4)
    # Split by patient, disjoint, every case once, each set non-empty.
    ids = first_run.split["train"] + first_run.split["val"] + first_run.split["test"]
    assert sorted(ids) == sorted(case.case_id for case in first_run.cases)
    assert all(first_run.split[subset] for subset in ("train", "val", "test"))
    assert [case.case_id for case in first_run.cases_of("test")] == first_run.split["test"]
    with pytest.raises(ValueError, match="subset"):
        first_run.cases_of("validation")


@pytest.mark.slow
def test_a_second_call_reuses_the_run_without_training(first_run, dataset):
    modified = (first_run.run_dir / "best.keras").stat().st_mtime_ns
    second = load_or_train(dataset, verbose=0, **TINY)
    assert second.reused
    assert second.run_dir == first_run.run_dir
    assert dict(second.split) == dict(first_run.split)
    assert second.history == first_run.history
    assert (second.run_dir / "best.keras").stat().st_mtime_ns == modified


@pytest.mark.slow
def test_other_settings_or_changed_data_mean_another_run_folder(first_run, dataset):
    config = Config.preset("quick", **TINY)
    cases = find_cases(dataset)
    assert run_key(config, _data_identity(dataset, cases, config)) == first_run.run_dir.name
    assert run_key(config.replace(base_filters=2), _data_identity(dataset, cases, config)) != first_run.run_dir.name
    seg = cases[0].seg
    before = seg.stat()
    try:
        os.utime(seg, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # "a new version"
        assert run_key(config, _data_identity(dataset, cases, config)) != first_run.run_dir.name
    finally:
        os.utime(seg, ns=(before.st_atime_ns, before.st_mtime_ns))


def _train_first_epoch_only(dataset, settings):
    """Train 1 epoch into the run folder `load_or_train(dataset, **settings)` will look in."""
    from gliseg_nb.split import select_cases, split_cases
    from gliseg_nb.train import fit

    config = Config.preset("quick", **settings)
    cases = find_cases(dataset)
    run_dir = runs_dir() / run_key(config, _data_identity(dataset, cases, config))
    split = split_cases(cases, config)
    fit(config.replace(epochs=1), select_cases(cases, split["train"]), select_cases(cases, split["val"]),
        run_dir, verbose=0, split=split)
    return run_dir


@pytest.mark.slow
def test_an_interrupted_run_is_resumed_not_restarted(dataset):
    # The run folder load_or_train will look in, holding only the first of its 2 epochs, as
    # if the kernel had been restarted during the second one.
    settings = {**TINY, "seed": 7}
    run_dir = _train_first_epoch_only(dataset, settings)

    resumed = load_or_train(dataset, verbose=0, **settings)
    assert resumed.run_dir == run_dir and not resumed.reused
    assert resumed.history["epoch"] == [0, 1]  # epoch 0 kept, epoch 1 added, none repeated
    assert load_or_train(dataset, verbose=0, **settings).reused


FINISH_UNDER_LOCK = """
    import os, sys, time
    from gliseg_nb.runs import RunFolder
    run = RunFolder(sys.argv[1])
    with run.locked():
        print("LOCKED", flush=True)
        time.sleep(2)
        os.replace(sys.argv[2], run.state_path)  # the other notebook commits its last epoch
"""


def test_a_second_notebook_waits_for_the_first_then_reuses_its_run(first_run, dataset, tmp_path, capsys):
    # Another kernel holds the run's lock, about to commit the last epoch of the same run.
    run_dir = first_run.run_dir
    modified = (run_dir / "best.keras").stat().st_mtime_ns
    state = tmp_path / "state.json"
    os.replace(run_dir / "state.json", state)
    script = tmp_path / "finish.py"
    script.write_text(textwrap.dedent(FINISH_UNDER_LOCK))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    other = subprocess.Popen([sys.executable, str(script), str(run_dir), str(state)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "LOCKED", other.stderr.read()
        second = load_or_train(dataset, verbose=0, **TINY)
    finally:
        other.wait(timeout=60)
        if state.exists():
            os.replace(state, run_dir / "state.json")
    printed = capsys.readouterr().out
    assert f"in use by process {other.pid}" in printed and "waiting" in printed
    assert second.reused and second.history["epoch"] == [0, 1]  # nothing trained twice
    assert (run_dir / "best.keras").stat().st_mtime_ns == modified


def test_a_cached_run_with_an_empty_checkpoint_is_trained_again_with_a_warning(dataset):
    settings = {**TINY, "seed": 8}
    run_dir = _train_first_epoch_only(dataset, settings)
    (run_dir / "last-epoch-000.keras").write_bytes(b"")  # a power loss during the last save
    with pytest.warns(UserWarning, match="last-epoch-000.keras: the checkpoint is empty"):
        again = load_or_train(dataset, verbose=0, **settings)
    assert not again.reused and again.history["epoch"] == [0, 1]


def test_run_key_depends_on_settings_and_data():
    quick = Config.preset("quick")
    data = {"data_dir": "/d", "files": [["a", "a_seg.nii", 1, 2]]}
    assert run_key(quick, data) == run_key(Config.preset("quick"), data)
    assert run_key(quick, data) != run_key(quick.replace(seed=1), data)
    assert run_key(quick, data) != run_key(quick, {**data, "files": [["a", "a_seg.nii", 1, 3]]})
    assert run_key(Config.preset("report"), data).startswith("report-")


def test_runs_dir_follows_the_cache_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("GLISEG_NB_CACHE", str(tmp_path))
    assert runs_dir() == tmp_path / "runs"


def test_too_few_cases_is_a_clear_error(tmp_path):
    data = write_layout(tmp_path / "data", "brats2020", n_cases=2, shape=(24, 24, 12))
    with pytest.raises(ValueError, match="at least 3 cases"):
        load_or_train(data, cache_dir=tmp_path / "runs", verbose=0, **TINY)


@pytest.mark.slow
def test_retrain_trains_again_from_scratch(first_run, dataset):
    before = (first_run.run_dir / "best.keras").stat().st_mtime_ns
    again = load_or_train(dataset, verbose=0, retrain=True, **TINY)
    assert not again.reused
    assert again.run_dir == first_run.run_dir
    assert again.history["epoch"] == [0, 1]  # a fresh run, not two more epochs
    assert (again.run_dir / "best.keras").stat().st_mtime_ns != before


def test_quiet_tensorflow_returns_the_module(monkeypatch):
    from gliseg_nb.course import quiet_tensorflow

    # conftest.py sets this variable for the whole suite: remove it to see quiet_tensorflow set it.
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    tf = quiet_tensorflow()
    assert hasattr(tf, "constant")
    # 3: TensorFlow's oneDNN and cuInit start-up lines are ERROR level and survive level 2.
    assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "3"


def _parameters(tmp_path, entries):
    import json

    (tmp_path / "synthetic_parameters.json").write_text(json.dumps({"cases": [
        {"case_id": case_id, "grade": grade, "volumes_ml": {"enhancing": et}}
        for case_id, grade, et in entries]}))


def test_demo_case_is_the_high_grade_case_with_most_enhancing_tumour(tmp_path):
    from gliseg_nb.data import Case

    def case(case_id, grade=None, seg=True):
        return Case(case_id=case_id, layout="brats2020", modalities={}, seg=tmp_path / "s" if seg else None,
                    grade=grade)

    cases = [case("a"), case("b"), case("c"), case("d", seg=False)]
    _parameters(tmp_path, [("a", "LGG", 90.0), ("b", "HGG", 10.0), ("c", "HGG", 40.0), ("d", "HGG", 99.0)])
    # d has the most ET but no labels; a has more than c but is low grade.
    assert demo_case(cases, tmp_path).case_id == "c"
    # Without the parameters file: the first high-grade case by Case.grade, else the first one.
    assert demo_case([case("x", "LGG"), case("y", "HGG")], tmp_path / "elsewhere").case_id == "y"
    assert demo_case([case("x"), case("z")]).case_id == "x"
    with pytest.raises(ValueError, match="at least one case with a segmentation"):
        demo_case([case("d", seg=False)])


def test_format_settings_puts_presets_side_by_side():
    quick, report = Config.preset("quick"), Config.preset("report")
    table = format_settings({"quick": quick, "report": report}, fields=["image_size", "epochs"])
    lines = table.splitlines()
    assert lines[0].split() == ["setting", "quick", "report"]
    assert lines[1].split() == ["image_size", str(quick.image_size), str(report.image_size)]
    assert lines[2].split() == ["epochs", str(quick.epochs), str(report.epochs)]
    # Columns fit the widest value: every line ends at the same place, the values right-aligned.
    wide = format_settings({"quick": quick, "report": report}, fields=["modalities", "epochs"]).splitlines()
    assert len({len(line) for line in wide}) == 1
    assert wide[1].endswith(str(report.modalities)) and wide[2].endswith(str(report.epochs))
    import dataclasses

    every = format_settings({"quick": quick}).splitlines()
    assert [line.split()[0] for line in every[1:]] == [field.name for field in dataclasses.fields(Config)]
