"""The 68/20/12 split by patient: reproducible, disjoint, stratified, saved and read back."""

import json
from pathlib import Path

import pytest

from gliseg_nb import Config
from gliseg_nb.data import Case
from gliseg_nb.split import CaseSplit, load_split, save_split, select_cases, split_cases


def make_cases(n, grades=None):
    """Cases that only need ids and grades (no files are read by the split)."""
    cases = []
    for index in range(n):
        path = Path(f"/nowhere/case_{index:03d}.nii.gz")
        grade = grades[index] if grades is not None else None
        cases.append(
            Case(
                case_id=f"BraTS20_Training_{index:03d}",
                layout="brats2020",
                modalities={m: path for m in ("flair", "t1", "t1ce", "t2")},
                seg=path,
                grade=grade,
            )
        )
    return cases


def test_split_sizes_are_the_reports_68_20_12():
    split = split_cases(make_cases(100), Config.preset("report"))
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (68, 20, 12)
    split = split_cases(make_cases(369), Config.preset("report"))  # BraTS 2020 training set
    sizes = [len(split[k]) for k in ("train", "val", "test")]
    assert sum(sizes) == 369
    assert abs(sizes[0] / 369 - 0.68) < 0.02 and abs(sizes[1] / 369 - 0.20) < 0.02


def test_split_is_disjoint_by_patient_and_covers_everyone():
    cases = make_cases(50)
    split = split_cases(cases, Config.preset("report"))
    train, val, test = (set(split[k]) for k in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == {c.case_id for c in cases}


def test_split_depends_on_seed_only_not_on_order():
    cases = make_cases(60)
    config = Config.preset("report", seed=7)
    first = split_cases(cases, config)
    assert split_cases(list(reversed(cases)), config) == first
    assert split_cases(cases, config.replace(seed=8)) != first
    assert first.seed == 7


def test_split_keeps_grade_proportions_when_every_case_has_a_grade():
    grades = ["HGG"] * 75 + ["LGG"] * 25
    cases = make_cases(100, grades)
    split = split_cases(cases, Config.preset("report"))
    assert split.stratified_by == "grade"
    grade_of = {c.case_id: c.grade for c in cases}
    for key, expected_lgg in (("train", 17), ("val", 5), ("test", 3)):
        lgg = sum(grade_of[i] == "LGG" for i in split[key])
        assert abs(lgg - expected_lgg) <= 1


def test_split_falls_back_to_random_when_grades_missing_or_too_rare():
    grades = ["HGG"] * 29 + [None]
    split = split_cases(make_cases(30, grades), Config.preset("report"))
    assert split.stratified_by is None
    with pytest.warns(UserWarning, match="cannot stratify"):
        rare = split_cases(make_cases(30, ["HGG"] * 29 + ["LGG"]), Config.preset("report"))
    assert rare.stratified_by is None
    assert sum(len(rare[k]) for k in ("train", "val", "test")) == 30


def test_split_rejects_duplicates_and_too_few_cases():
    cases = make_cases(5)
    with pytest.raises(ValueError, match="twice"):
        split_cases(cases + cases[:1], Config.preset("report"))
    with pytest.raises(ValueError, match="at least 3"):
        split_cases(cases[:2], Config.preset("report"))


def test_save_and_load_split_round_trip(tmp_path):
    cases = make_cases(40)
    split = split_cases(cases, Config.preset("report", seed=3))
    path = save_split(split, tmp_path / "runs" / "split.json")
    payload = json.loads(path.read_text())
    assert payload["seed"] == 3 and payload["fractions"] == [0.68, 0.2, 0.12]
    assert not list(path.parent.glob("*.tmp*"))
    loaded = load_split(path, cases=cases)
    assert isinstance(loaded, CaseSplit)
    assert loaded == split and loaded.seed == 3 and loaded.fractions == (0.68, 0.2, 0.12)
    assert [c.case_id for c in select_cases(cases, loaded["test"])] == loaded["test"]


def test_load_split_names_missing_cases_and_bad_files(tmp_path):
    cases = make_cases(20)
    path = save_split(split_cases(cases, Config.preset("report")), tmp_path / "split.json")
    with pytest.raises(ValueError, match="not found"):
        load_split(path, cases=cases[:10])
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": []}')
    with pytest.raises(ValueError, match="not a split file"):
        load_split(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_split(tmp_path / "absent.json")
    with pytest.raises(ValueError, match="not found"):
        select_cases(cases, ["BraTS20_Training_999"])
