"""Presets: the report's numbers exactly, and a quick setting that is really quick."""

import pytest

from gliseg_nb import Config


def test_report_preset_reproduces_the_reports_numbers():
    config = Config.preset("report")
    assert config.modalities == ("flair", "t1ce")
    assert config.slice_indices == tuple(range(22, 122))  # VOLUME_START_AT=22, 100 slices
    assert len(config.slice_indices) == 100
    assert config.image_size == 128 and config.input_shape == (128, 128, 2)
    assert config.n_classes == 4
    assert config.batch_size == 100  # one patient per batch
    assert config.split == (0.68, 0.20, 0.12)
    assert config.augment is False and config.normalization == "zscore"


def test_quick_preset_is_smaller_but_same_task():
    quick = Config.preset("quick")
    report = Config.preset("report")
    assert quick.n_classes == report.n_classes
    # The quick model reads all four contrasts (it transfers better to real scans); the
    # report's network reads FLAIR and T1ce.
    assert quick.modalities == ("flair", "t1", "t1ce", "t2")
    assert report.modalities == ("flair", "t1ce")
    assert quick.image_size < report.image_size
    assert len(quick.slice_indices) < len(report.slice_indices)
    assert quick.slice_indices[0] == 22 and quick.slice_indices[-1] <= 121
    assert quick.batch_size <= quick.shuffle_buffer
    assert quick.augment is True


def test_overrides_and_round_trip(tmp_path):
    config = Config.preset("quick", image_size=32, seed=5)
    assert config.image_size == 32 and config.preset == "quick"
    path = config.save(tmp_path / "config.json")
    assert Config.load(path) == config


def test_bad_settings_raise_value_error():
    with pytest.raises(ValueError, match="preset"):
        Config.preset("fast")
    with pytest.raises(ValueError, match="normalization"):
        Config.preset("report", normalization="minmax")
    with pytest.raises(ValueError, match="split"):
        Config.preset("report", split=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="modalities"):
        Config.preset("report", modalities=("pd",))
