"""Finding cases: every BraTS layout, validation folders, junk files, and bad folders."""

import json
import warnings

import numpy as np
import pytest

from gliseg_nb.data import Case, DataError, find_cases, format_case_table
from layout_fixtures import LAYOUTS, MODALITIES, fixture_case_ids, write_layout, write_nifti


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("with_seg", [True, False], ids=["training", "validation"])
def test_every_layout_is_found(tmp_path, layout, with_seg):
    write_layout(tmp_path, layout, n_cases=3, with_seg=with_seg)

    cases = find_cases(tmp_path)

    assert [case.case_id for case in cases] == sorted(fixture_case_ids(layout, 3, with_seg))
    for case in cases:
        assert case.layout == layout
        assert list(case.modalities) == list(MODALITIES)
        assert all(path.is_file() for path in case.modalities.values())
        if with_seg:
            assert case.seg is not None and case.seg.is_file()
        else:
            assert case.seg is None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_root_may_be_the_dataset_folder_or_a_parent(tmp_path, layout):
    dataset = write_layout(tmp_path / "downloads" / "brats", layout)

    from_dataset = find_cases(dataset)
    from_parent = find_cases(tmp_path)

    assert [c.case_id for c in from_dataset] == [c.case_id for c in from_parent]
    assert len(from_parent) == 2


def test_brats2023_modalities_are_renamed(tmp_path):
    write_layout(tmp_path, "brats2023-gli", n_cases=1)

    (case,) = find_cases(tmp_path)

    assert case.modalities["flair"].name.endswith("-t2f.nii.gz")
    assert case.modalities["t1"].name.endswith("-t1n.nii.gz")
    assert case.modalities["t1ce"].name.endswith("-t1c.nii.gz")
    assert case.modalities["t2"].name.endswith("-t2w.nii.gz")
    assert case.seg.name.endswith("-seg.nii.gz")


def test_brats2020_official_and_kaggle_differ_by_compression(tmp_path):
    write_layout(tmp_path / "official", "brats2020", n_cases=1)
    write_layout(tmp_path / "kaggle", "brats2020-kaggle", n_cases=2)

    official = find_cases(tmp_path / "official")
    kaggle = find_cases(tmp_path / "kaggle")

    assert official[0].modalities["flair"].name == "BraTS20_Training_001_flair.nii.gz"
    assert kaggle[0].modalities["flair"].name == "BraTS20_Training_001_flair.nii"
    assert {c.layout for c in official} == {"brats2020"}
    assert {c.layout for c in kaggle} == {"brats2020-kaggle"}


def test_kaggle_case_355_keeps_its_odd_segmentation(tmp_path):
    write_layout(tmp_path, "brats2020-kaggle", n_cases=2)

    cases = {case.case_id: case for case in find_cases(tmp_path)}

    assert cases["BraTS20_Training_355"].seg.name == "W39_1998.09.19_Segm.nii"
    assert cases["BraTS20_Training_001"].seg.name == "BraTS20_Training_001_seg.nii"


def test_grades_come_from_folders_or_name_mapping(tmp_path):
    write_layout(tmp_path / "2019", "brats2019", n_cases=2)
    write_layout(tmp_path / "2020", "brats2020-kaggle", n_cases=2)
    write_layout(tmp_path / "2021", "brats2021", n_cases=1)

    grades = {case.case_id: case.grade for case in find_cases(tmp_path)}

    # write_layout alternates HGG, LGG; 2019 takes it from the folder, 2020 from the CSV.
    assert grades["BraTS19_CBICA_AAA_1"] == "HGG"
    assert grades["BraTS19_TCIA10_101_1"] == "LGG"
    assert grades["BraTS20_Training_001"] == "HGG"
    assert grades["BraTS20_Training_355"] == "LGG"
    assert grades["BraTS2021_00001"] is None


def test_msd_cases_share_one_4d_file_with_channels(tmp_path):
    dataset = write_layout(tmp_path, "msd", n_cases=2)

    cases = find_cases(tmp_path)

    assert [case.case_id for case in cases] == ["BRATS_001", "BRATS_002"]
    first = cases[0]
    assert set(first.modalities.values()) == {dataset / "imagesTr" / "BRATS_001.nii.gz"}
    assert first.channels == {"flair": 0, "t1": 1, "t1ce": 2, "t2": 3}
    assert first.seg == dataset / "labelsTr" / "BRATS_001.nii.gz"
    # The macOS "._BRATS_001.nii.gz" file is beside the images but is no case.
    assert (dataset / "imagesTr" / "._BRATS_001.nii.gz").exists()


def test_msd_channel_order_is_read_from_dataset_json(tmp_path):
    dataset = write_layout(tmp_path, "msd", n_cases=1)
    description = json.loads((dataset / "dataset.json").read_text())
    description["modality"] = {"0": "T2w", "1": "FLAIR", "2": "T1w", "3": "t1gd"}
    (dataset / "dataset.json").write_text(json.dumps(description))

    (case,) = find_cases(dataset)

    assert case.channels == {"flair": 1, "t1": 2, "t1ce": 3, "t2": 0}


def test_msd_training_and_test_images_together(tmp_path):
    dataset = write_layout(tmp_path, "msd", n_cases=2)
    write_layout(tmp_path / "test_part", "msd", n_cases=1, with_seg=False)
    (tmp_path / "test_part" / "Task01_BrainTumour" / "imagesTs").rename(dataset / "imagesTs")

    cases = {case.case_id: case for case in find_cases(dataset)}

    assert sorted(cases) == ["BRATS_001", "BRATS_002", "BRATS_485"]
    assert cases["BRATS_485"].seg is None
    assert cases["BRATS_001"].seg is not None


def test_msd_training_image_without_label_is_reported(tmp_path):
    dataset = write_layout(tmp_path, "msd", n_cases=2)
    (dataset / "labelsTr" / "BRATS_002.nii.gz").unlink()

    with pytest.raises(DataError, match=r"labelsTr.BRATS_002\.nii\.gz.*missing"):
        find_cases(dataset)


def test_broken_dataset_json_is_reported(tmp_path):
    dataset = write_layout(tmp_path, "msd", n_cases=1)
    (dataset / "dataset.json").write_text("{not json")

    with pytest.raises(DataError, match=r"dataset\.json"):
        find_cases(dataset)


def test_macos_junk_beside_brats_files_is_ignored(tmp_path):
    dataset = write_layout(tmp_path, "brats2020", n_cases=1)
    case_folder = dataset / "BraTS20_Training_001"
    (case_folder / "._BraTS20_Training_001_flair.nii.gz").write_bytes(b"\x00\x05\x16\x07junk")
    (dataset / "__MACOSX").mkdir()

    (case,) = find_cases(dataset)

    assert case.modalities["flair"].name == "BraTS20_Training_001_flair.nii.gz"


def test_several_datasets_below_one_root_are_all_found(tmp_path):
    for layout in ("brats2019", "brats2021", "msd"):
        write_layout(tmp_path, layout, n_cases=2)

    cases = find_cases(tmp_path)

    assert len(cases) == 6
    assert [case.case_id for case in cases] == sorted(case.case_id for case in cases)
    assert {case.layout for case in cases} == {"brats2019", "brats2021", "msd"}


def test_prediction_files_beside_the_data_are_not_cases(tmp_path):
    write_layout(tmp_path, "brats2021", n_cases=1)
    write_nifti(tmp_path / "predictions" / "BraTS2021_00001.nii.gz", np.zeros((4, 4, 4), np.uint8))

    cases = find_cases(tmp_path)

    assert [case.case_id for case in cases] == ["BraTS2021_00001"]


def test_missing_modality_names_folder_and_modality(tmp_path):
    dataset = write_layout(tmp_path, "brats2021", n_cases=2)
    (dataset / "BraTS2021_00002" / "BraTS2021_00002_t1ce.nii.gz").unlink()

    with pytest.raises(DataError, match=r"BraTS2021_00002.*missing the t1ce modality"):
        find_cases(tmp_path)


def test_missing_modality_in_brats2023_uses_package_names(tmp_path):
    dataset = write_layout(tmp_path, "brats2023-gli", n_cases=1)
    (dataset / "BraTS-GLI-00001-000" / "BraTS-GLI-00001-000-t2f.nii.gz").unlink()

    with pytest.raises(DataError, match=r"BraTS-GLI-00001-000.*missing the flair modality"):
        find_cases(tmp_path)


def test_empty_folder_says_how_to_get_data(tmp_path):
    with pytest.raises(DataError, match=r"no BraTS case found") as raised:
        find_cases(tmp_path)

    message = str(raised.value)
    assert str(tmp_path) in message
    assert "gliseg-nb synth" in message
    assert "download_msd" in message
    assert "Kaggle" in message


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(DataError, match=r"nowhere.*does not exist"):
        find_cases(tmp_path / "nowhere")


def test_file_instead_of_folder_is_reported(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")

    with pytest.raises(DataError, match=r"notes\.txt.*not a folder"):
        find_cases(path)


def test_same_case_twice_is_reported(tmp_path):
    write_layout(tmp_path / "copy_a", "brats2021", n_cases=1)
    write_layout(tmp_path / "copy_b", "brats2021", n_cases=1)

    with pytest.raises(DataError, match=r"BraTS2021_00001.*found twice"):
        find_cases(tmp_path)


def test_two_files_for_one_modality_are_reported(tmp_path):
    dataset = write_layout(tmp_path, "brats2021", n_cases=1)
    folder = dataset / "BraTS2021_00001"
    (folder / "BraTS2021_00001_flair.nii.gz").rename(folder / "BraTS2021_00001_flair.nii")
    write_nifti(folder / "BraTS2021_00001_flair.nii.gz", np.zeros((24, 24, 16), np.int16))

    with pytest.raises(DataError, match=r"BraTS2021_00001.*two files for 'flair'"):
        find_cases(tmp_path)


def test_case_is_json_ready_and_hashable(tmp_path):
    write_layout(tmp_path, "msd", n_cases=1)
    (case,) = find_cases(tmp_path)

    data = json.loads(json.dumps(case.to_dict()))

    assert data["case_id"] == "BRATS_001"
    assert data["layout"] == "msd"
    assert data["modalities"]["t1ce"].endswith("BRATS_001.nii.gz")
    assert data["channels"]["t1ce"] == 2
    assert data["seg"].endswith("labelsTr/BRATS_001.nii.gz")
    assert data["grade"] is None
    assert len({case, find_cases(tmp_path)[0]}) == 1
    with pytest.raises(AttributeError):
        case.case_id = "other"
    assert isinstance(case, Case)


def test_case_table_lists_every_case_with_a_count(tmp_path):
    write_layout(tmp_path, "brats2019", n_cases=2)
    write_layout(tmp_path, "msd", n_cases=1, with_seg=False)

    table = format_case_table(find_cases(tmp_path))
    lines = table.splitlines()

    assert lines[0].split() == ["case_id", "layout", "grade", "seg"]
    rows = [line.split() for line in lines[2:-1]]
    assert rows == [
        ["BRATS_485", "msd", "-", "no"],
        ["BraTS19_CBICA_AAA_1", "brats2019", "HGG", "yes"],
        ["BraTS19_TCIA10_101_1", "brats2019", "LGG", "yes"],
    ]
    # Columns line up: every row starts its layout where the header does.
    layout_column = lines[0].index("layout")
    assert all(line[layout_column:].startswith(row[1]) for line, row in zip(lines[2:-1], rows))
    assert lines[-1] == "3 cases (brats2019: 2, msd: 1), 2 with segmentation"


def test_case_table_of_nothing():
    assert format_case_table([]).splitlines()[-1] == "0 cases, 0 with segmentation"


def test_training_case_without_segmentation_is_flagged(tmp_path):
    dataset = write_layout(tmp_path, "brats2021", n_cases=3)
    (dataset / "BraTS2021_00002" / "BraTS2021_00002_seg.nii.gz").unlink()

    with pytest.warns(UserWarning, match=r"1 of 3 cases have no segmentation \(BraTS2021_00002\)"):
        cases = find_cases(tmp_path)

    assert [case.seg is None for case in cases] == [False, True, False]


def test_validation_folder_gives_no_warning(tmp_path):
    write_layout(tmp_path, "brats2021", n_cases=3, with_seg=False)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cases = find_cases(tmp_path)

    assert all(case.seg is None for case in cases)


@pytest.mark.parametrize(
    "layout, expected",
    [("brats2021", "brats2020"), ("brats2020-kaggle", "brats2020-kaggle"),
     ("brats2023-gli", "brats2023-gli")],
)
def test_renamed_case_folders_keep_their_label_convention(tmp_path, layout, expected):
    # A learner's own copy with renamed folders: the file names still tell the convention.
    dataset = write_layout(tmp_path, layout, n_cases=1)
    (case_folder,) = {p.parent for p in dataset.rglob("*.nii*")}
    case_folder.rename(case_folder.with_name("patient_a"))

    (case,) = find_cases(tmp_path)

    assert case.case_id == "patient_a"
    assert case.layout == expected


# -- which file is the ground truth ------------------------------------------------------
@pytest.mark.parametrize("name", ["BraTS2021_00001_brain_segmentation_mask.nii.gz",
                                  "BraTS2021_00001_flair_seg.nii.gz",
                                  "my_seg.nii.gz"])
def test_a_file_that_merely_says_seg_is_not_the_ground_truth(tmp_path, name):
    dataset = write_layout(tmp_path, "brats2021", n_cases=1, with_seg=False)
    folder = dataset / "BraTS2021_00001"
    write_nifti(folder / name, np.zeros((24, 24, 16), np.uint8))

    with pytest.warns(UserWarning, match=rf"BraTS2021_00001: ignored {name}.*"
                                         r"BraTS2021_00001_seg\.nii\.gz.*without segmentation"):
        (case,) = find_cases(tmp_path)

    assert case.seg is None


def test_a_seg_like_file_beside_the_ground_truth_is_named_and_ignored(tmp_path):
    dataset = write_layout(tmp_path, "brats2023-gli", n_cases=1)
    folder = dataset / "BraTS-GLI-00001-000"
    write_nifti(folder / "BraTS-GLI-00001-000-segmentation-v2.nii.gz",
                np.zeros((24, 24, 16), np.uint8))

    with pytest.warns(UserWarning, match=r"ignored BraTS-GLI-00001-000-segmentation-v2\.nii\.gz"
                                         r".*BraTS-GLI-00001-000-seg\.nii\.gz.*the segmentation "
                                         r"is BraTS-GLI-00001-000-seg\.nii\.gz"):
        (case,) = find_cases(tmp_path)

    assert case.seg == folder / "BraTS-GLI-00001-000-seg.nii.gz"


def test_case_355_name_is_accepted_without_a_warning(tmp_path):
    write_layout(tmp_path, "brats2020-kaggle", n_cases=2)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cases = {case.case_id: case for case in find_cases(tmp_path)}

    assert cases["BraTS20_Training_355"].seg.name == "W39_1998.09.19_Segm.nii"


def test_files_of_two_cases_in_one_folder_are_reported(tmp_path):
    dataset = write_layout(tmp_path, "brats2021", n_cases=2)
    folder = dataset / "BraTS2021_00001"
    (folder / "BraTS2021_00001_t2.nii.gz").unlink()
    (dataset / "BraTS2021_00002" / "BraTS2021_00002_t2.nii.gz").rename(
        folder / "BraTS2021_00002_t2.nii.gz")

    with pytest.raises(DataError, match=r"BraTS2021_00001: the modality files name several "
                                        r"cases \(BraTS2021_00001, BraTS2021_00002\)"):
        find_cases(folder)


# -- folders reached through symbolic links ---------------------------------------------
def test_case_folders_that_are_symlinks_are_found(tmp_path):
    dataset = write_layout(tmp_path / "storage", "brats2021", n_cases=2)
    linked = tmp_path / "linked"
    linked.mkdir()
    for case_folder in sorted(dataset.iterdir()):
        (linked / case_folder.name).symlink_to(case_folder, target_is_directory=True)

    cases = find_cases(linked)

    assert [case.case_id for case in cases] == ["BraTS2021_00001", "BraTS2021_00002"]
    assert cases[0].modalities["flair"] == linked / "BraTS2021_00001" / \
        "BraTS2021_00001_flair.nii.gz"


def test_a_symlink_cycle_ends_and_each_case_is_found_once(tmp_path):
    dataset = write_layout(tmp_path, "brats2021", n_cases=2)
    (dataset / "BraTS2021_00001" / "back_up").symlink_to(dataset, target_is_directory=True)
    (tmp_path / "same_data").symlink_to(dataset, target_is_directory=True)

    cases = find_cases(tmp_path)

    assert [case.case_id for case in cases] == ["BraTS2021_00001", "BraTS2021_00002"]
