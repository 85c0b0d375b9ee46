"""Preprocessing, the two feeds (PyDataset and cached tf.data) and the slice cache."""

import json
import os

import nibabel as nib
import numpy as np
import pytest

from gliseg_nb import Config
from gliseg_nb import _cache
from gliseg_nb._preprocess import resize_volume
from gliseg_nb.data import find_cases, load_case
from gliseg_nb.dataset import build_cache, make_dataset
from gliseg_nb.preprocessing import (
    load_arrays,
    normalize_intensities,
    preprocess_case,
    resize_labels_bilinear,
    resize_labels_nearest,
    resize_onehot_bilinear,
)
from gliseg_nb.sequence import SliceSequence

SHAPE = (48, 44, 36)  # small volumes keep the tests fast; not square on purpose


def small_config(**overrides):
    """Settings that fit SHAPE: slices 6..29, 32 px."""
    values = dict(slice_start=6, n_slices=24, image_size=32, batch_size=16, shuffle_buffer=64, depth=2)
    values.update(overrides)
    return Config.preset("report", **values)


def write_case(root, index, rng, shape=SHAPE):
    """One BraTS 2020 case: an ellipsoid 'brain' with a layered tumour (labels 1, 2, 4)."""
    case_id = f"BraTS20_Training_{index:03d}"
    folder = root / "MICCAI_BraTS2020_TrainingData" / case_id
    folder.mkdir(parents=True)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    brain = (grid**2).sum(axis=0) < 0.8
    centre = rng.uniform(-0.25, 0.25, size=3)[:, None, None, None]
    distance = np.sqrt(((grid - centre) ** 2).sum(axis=0))
    seg = np.zeros(shape, np.uint8)
    seg[(distance < 0.45) & brain] = 2
    seg[(distance < 0.3) & brain] = 4
    seg[(distance < 0.15) & brain] = 1
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    for number, modality in enumerate(("flair", "t1", "t1ce", "t2")):
        # Different offsets and scales per modality: normalisation must undo them.
        image = (100 * (number + 1) + 30 * (number + 1) * rng.standard_normal(shape) + 50 * seg) * brain
        nib.save(nib.Nifti1Image(image.astype(np.int16), affine), folder / f"{case_id}_{modality}.nii.gz")
    nib.save(nib.Nifti1Image(seg, affine), folder / f"{case_id}_seg.nii.gz")
    return folder


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("brats")
    rng = np.random.default_rng(0)
    for index in range(1, 5):
        write_case(root, index, rng)
    return root


@pytest.fixture(scope="module")
def cases(dataset_root):
    return find_cases(dataset_root)


# -- preprocessing ------------------------------------------------------------------------
def test_preprocess_case_shapes_dtypes_and_classes(cases):
    config = small_config()
    x, y, slices = preprocess_case(cases[0], config, return_slices=True)
    assert x.shape == (24, 32, 32, 2) and x.dtype == np.float32
    assert y.shape == (24, 32, 32) and y.dtype == np.uint8
    assert list(slices) == list(range(6, 30))
    assert set(np.unique(y)) <= {0, 1, 2, 3} and 3 in np.unique(y)  # 4 on disk became 3
    # A loaded CaseData gives the same result as a Case.
    case_data = load_case(cases[0], modalities=["flair", "t1ce"], slices=(0, SHAPE[2]))
    x2, y2 = preprocess_case(case_data, config)
    np.testing.assert_allclose(x, x2, atol=1e-5)
    np.testing.assert_array_equal(y, y2)


def test_slice_step_and_brain_slices_only(cases):
    stepped = preprocess_case(cases[0], small_config(slice_step=4), return_slices=True)
    assert list(stepped[2]) == [6, 10, 14, 18, 22, 26]
    # Slices 0..35: the ellipsoid brain leaves the outermost slices empty.
    config = small_config(slice_start=0, n_slices=36, brain_slices_only=True)
    x, y, slices = preprocess_case(cases[0], config, return_slices=True)
    assert 0 < len(slices) < 36
    assert np.all(np.any(x != 0, axis=(1, 2, 3)))
    full = preprocess_case(cases[0], config.replace(brain_slices_only=False))[0]
    assert not np.all(np.any(full != 0, axis=(1, 2, 3)))


def test_zscore_brain_voxels_mean_zero_std_one_before_resize(cases):
    case_data = load_case(cases[1], modalities=["flair", "t1ce"], slices=(6, 30))
    stack = np.stack([case_data.images["flair"], case_data.images["t1ce"]], axis=-1)
    brain = np.any(stack != 0, axis=-1)
    normalized = normalize_intensities(stack, "zscore")
    for channel in range(2):
        values = normalized[..., channel][brain]
        assert abs(values.mean()) < 1e-4
        assert abs(values.std() - 1) < 1e-3
    assert np.all(normalized[~brain] == 0)
    # The report's way: one shared maximum, so the dimmer channel never reaches 1.
    scaled = normalize_intensities(stack, "max")
    assert scaled.max() == pytest.approx(1.0)
    assert scaled[..., 0].max() < 0.9  # flair is the dimmer modality in this fixture


def test_zscore_batches_keep_the_scale_after_resize(cases):
    x, _ = preprocess_case(cases[1], small_config())
    inside = np.any(x != 0, axis=-1)
    assert abs(x[inside].mean()) < 0.2 and 0.5 < x[inside].std() < 1.5
    x_max, _ = preprocess_case(cases[1], small_config(normalization="max"))
    assert x_max.min() >= 0 and x_max.max() <= 1.0 + 1e-6


def test_nearest_resize_never_invents_classes_but_bilinear_does():
    # Background (0) next to enhancing tumour (3): no necrosis or edema between them.
    labels = np.zeros((60, 60), np.uint8)
    labels[20:40, 17:43] = 3
    labels[28:32, 28:32] = 1
    for size in (32, 128, 45):
        nearest = resize_labels_nearest(labels, size)
        assert set(np.unique(nearest)) <= {0, 1, 3}
        # Where 0 meets 3, nothing else appears: every 2 or (invented) 1 would sit here.
        edge = nearest[: size * 25 // 60]  # input rows 0..24: classes 0 and 3 only
        assert set(np.unique(edge)) <= {0, 3}
    # Resizing the label map as an image passes through 1 and 2 between 0 and 3.
    invented = resize_labels_bilinear(labels, 45)
    assert np.any(np.isin(invented[: 45 * 25 // 60], (1, 2)))
    # The source notebook's path: one-hot masks resized bilinearly are no longer one-hot.
    soft = resize_onehot_bilinear(labels, 45)
    assert soft.shape == (45, 45, 4)
    np.testing.assert_allclose(soft.sum(axis=-1), 1.0, atol=1e-5)
    mixed = (soft.max(axis=-1) < 0.999).mean()
    assert mixed > 0.01


def test_nearest_resize_of_volume_stack_keeps_slice_axis():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=(40, 40, 5)).astype(np.uint8)
    out = resize_labels_nearest(labels, 40)
    np.testing.assert_array_equal(out, labels.transpose(2, 0, 1))



@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("shape, size", [((50, 37, 3), 20), ((30, 24, 2), 64), ((240, 240, 2), 128)])
def test_image_resize_is_pils_bilinear_filter_on_every_slice(shape, size, order):
    # Pillow (a Matplotlib dependency) is the reference for an antialiased bilinear resize:
    # a triangle filter widened by the shrink factor when downsampling, plain linear
    # interpolation when enlarging. Both memory orders: NIfTI volumes come in Fortran order.
    from PIL import Image

    volume = np.asarray(np.random.default_rng(1).random(shape, dtype=np.float32), order=order)
    resized = resize_volume(volume, size)
    expected = np.stack([
        np.asarray(Image.fromarray(volume[:, :, i], mode="F").resize((size, size), Image.BILINEAR))
        for i in range(shape[2])
    ])
    assert resized.shape == (shape[2], size, size) and resized.dtype == np.float32
    np.testing.assert_allclose(resized, expected, atol=1e-6)


@pytest.mark.parametrize("order", ["C", "F"])
def test_nearest_label_resize_picks_the_pixel_under_each_output_centre(order):
    labels = np.asarray(np.random.default_rng(2).integers(0, 4, size=(9, 6, 2)), order=order).astype(np.uint8)
    out = resize_labels_nearest(labels, 3)
    # Output pixel centres (0.5, 1.5, 2.5) * 3 fall in input rows 1, 4, 7 and * 2 in columns 1, 3, 5.
    np.testing.assert_array_equal(out, labels[[1, 4, 7]][:, [1, 3, 5]].transpose(2, 0, 1))

# -- PyDataset ---------------------------------------------------------------------------
def test_slice_sequence_batches(cases):
    config = small_config()
    sequence = SliceSequence(cases, config, shuffle=True, seed=3)
    assert len(sequence) == -(-4 * 24 // 16)
    x, y = sequence[0]
    assert x.shape == (16, 32, 32, 2) and x.dtype == np.float32
    assert y.shape == (16, 32, 32, 4) and y.dtype == np.float32
    np.testing.assert_array_equal(y.sum(axis=-1), 1.0)
    total = sum(len(sequence[i][0]) for i in range(len(sequence)))
    assert total == 4 * 24
    first_slice_order = sequence.slice_order.copy()
    sequence.on_epoch_end()
    assert not np.array_equal(first_slice_order, sequence.slice_order)
    # Same seed, same epoch: same batch.
    again = SliceSequence(cases, config, shuffle=True, seed=3)
    np.testing.assert_array_equal(again[1][1], SliceSequence(cases, config, seed=3)[1][1])


def test_slice_sequence_passes_workers_to_pydataset(cases):
    sequence = SliceSequence(cases, small_config(), workers=2, use_multiprocessing=False)
    assert sequence.workers == 2 and sequence.use_multiprocessing is False


def test_slice_sequence_rejects_cases_without_segmentation(cases):
    import dataclasses

    unlabelled = dataclasses.replace(cases[0], seg=None)
    with pytest.raises(ValueError, match="without segmentation"):
        SliceSequence([unlabelled], small_config())


# -- cache + tf.data ----------------------------------------------------------------------
def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_make_dataset_batches_and_matches_preprocessing(cases, tmp_path):
    config = small_config()
    dataset = make_dataset(cases, config, training=False, cache_dir=tmp_path, workers=1, progress=False)
    batches = _batches(dataset)
    assert sum(len(x) for x, _ in batches) == 4 * 24
    x, y = batches[0]
    assert x.shape == (16, 32, 32, 2) and x.dtype == np.float32
    assert y.shape == (16, 32, 32, 4) and y.dtype == np.float32
    np.testing.assert_array_equal(y.sum(axis=-1), 1.0)
    # Evaluation order is case by case, slice by slice: compare with preprocess_case
    # (the cache stores float16, hence the tolerance).
    expected_x, expected_y = preprocess_case(cases[0], config)
    np.testing.assert_allclose(x, expected_x[:16], atol=2e-2, rtol=1e-2)
    np.testing.assert_array_equal(y.argmax(-1), expected_y[:16])


def test_evaluation_batches_are_deterministic_and_training_shuffles(cases, tmp_path):
    config = small_config(augment=True)
    evaluation = make_dataset(cases, config, training=False, cache_dir=tmp_path, workers=1, progress=False)
    first, second = _batches(evaluation), _batches(evaluation)
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    training = make_dataset(cases, config, training=True, cache_dir=tmp_path, workers=1, progress=False)
    epoch1, epoch2 = _batches(training), _batches(training)
    assert not np.array_equal(epoch1[0][0], first[0][0])  # shuffled and augmented
    assert not np.array_equal(epoch1[0][0], epoch2[0][0])  # differently each epoch
    assert sum(len(x) for x, _ in epoch1) == 4 * 24
    for x, y in epoch1:
        np.testing.assert_array_equal(y.sum(axis=-1), 1.0)
        # Flips move labels with the image: tumour labels only inside the brain.
        tumour = y[..., 1:].sum(-1) > 0
        assert np.all(np.any(x != 0, axis=-1)[tumour])
    # Same seed, same training stream from a fresh pipeline.
    again = _batches(make_dataset(cases, config, training=True, cache_dir=tmp_path, workers=1, progress=False))
    np.testing.assert_array_equal(again[0][0], epoch1[0][0])


def test_cache_is_reused_then_rebuilt_when_source_or_setting_changes(dataset_root, tmp_path):
    cases = find_cases(dataset_root)[:2]
    config = small_config()
    paths = build_cache(cases, config, cache_dir=tmp_path, workers=1, progress=False)
    meta_times = [os.stat(p / "meta.json").st_mtime_ns for p in paths]
    assert build_cache(cases, config, cache_dir=tmp_path, workers=1, progress=False) == paths
    assert [os.stat(p / "meta.json").st_mtime_ns for p in paths] == meta_times

    # Rewrite one source file with different content: its entry is rebuilt, the other kept.
    flair = cases[0].modalities["flair"]
    image = nib.load(flair)
    data = np.asanyarray(image.dataobj).astype(np.int16) * 2
    nib.save(nib.Nifti1Image(data, image.affine), flair)
    stat = os.stat(flair)
    os.utime(flair, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    rebuilt = build_cache(cases, config, cache_dir=tmp_path, workers=1, progress=False)
    assert rebuilt[0] != paths[0] and rebuilt[1] == paths[1]
    assert not paths[0].exists()  # the stale entry is deleted
    # Only a touch (same bytes, new time): still rebuilt, identity includes the time.
    os.utime(flair, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    touched = build_cache(cases, config, cache_dir=tmp_path, workers=1, progress=False)
    assert touched[0] not in (paths[0], rebuilt[0])

    # A setting that shapes the arrays: a new entry; a training-only setting: the same one.
    resized = build_cache(cases, config.replace(image_size=16), cache_dir=tmp_path, workers=1, progress=False)
    assert resized[1] != paths[1]
    assert np.load(resized[1] / "x.npy").shape[1:] == (16, 16, 2)
    same = build_cache(cases, config.replace(epochs=1, batch_size=3), cache_dir=tmp_path, workers=1, progress=False)
    assert same[1] == paths[1]
    normalized = build_cache(cases, config.replace(normalization="max"), cache_dir=tmp_path, workers=1, progress=False)
    assert normalized[1] != paths[1]


@pytest.mark.parametrize("fail_at", ["second_save", "replace"])
def test_interrupted_cache_write_leaves_nothing_valid(dataset_root, tmp_path, monkeypatch, fail_at):
    cases = find_cases(dataset_root)[:1]
    config = small_config()
    real_save, real_replace = np.save, os.replace
    calls = []

    def failing_save(path, array, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            real_save(path, array[: len(array) // 2])  # a half-written file, then the crash
            raise OSError("disk full")
        return real_save(path, array, *args, **kwargs)

    def failing_replace(source, target):
        raise KeyboardInterrupt  # interrupted just before the entry goes into place

    if fail_at == "second_save":
        monkeypatch.setattr(np, "save", failing_save)
        expected = OSError
    else:
        monkeypatch.setattr(os, "replace", failing_replace)
        expected = KeyboardInterrupt
    with pytest.raises(expected):
        build_cache(cases, config, cache_dir=tmp_path, workers=1, progress=False)
    monkeypatch.setattr(np, "save", real_save)
    monkeypatch.setattr(os, "replace", real_replace)

    path, identity = _cache.entry_dir(tmp_path, cases[0], config)
    assert _cache.read_entry(path, identity) is None
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []  # the temporary folder was cleaned up
    # The next run builds a complete, valid entry.
    (built,) = build_cache(cases, config, cache_dir=tmp_path, workers=1, progress=False)
    x, y, meta = _cache.read_entry(built, identity)
    assert x.shape == (24, 32, 32, 2) and meta["complete"] is True


def test_entry_without_metadata_or_with_wrong_shapes_is_not_read(dataset_root, tmp_path):
    cases = find_cases(dataset_root)[:1]
    config = small_config()
    (path,) = build_cache(cases, config, cache_dir=tmp_path, workers=1, progress=False)
    _, identity = _cache.entry_dir(tmp_path, cases[0], config)
    assert _cache.read_entry(path, identity) is not None
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "x_shape": [1, 2, 3, 4]}))
    assert _cache.read_entry(path, identity) is None
    (path / "meta.json").unlink()
    assert _cache.read_entry(path, identity) is None
    # make_dataset rebuilds it rather than reading the broken folder.
    (rebuilt,) = build_cache(cases, config, cache_dir=tmp_path, workers=1, progress=False)
    assert _cache.read_entry(rebuilt, identity) is not None


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GLISEG_NB_CACHE", str(tmp_path))
    assert _cache.default_cache_dir() == tmp_path / "slices"


def test_load_arrays_stacks_cases(cases):
    x, y = load_arrays(cases[:2], small_config(slice_step=2))
    assert x.shape == (24, 32, 32, 2) and y.shape == (24, 32, 32, 4)
    x, labels = load_arrays(cases[:1], small_config(), one_hot=False)
    assert labels.dtype == np.uint8 and labels.shape == (24, 32, 32)


def test_bad_config_and_out_of_range_slices_raise(cases):
    with pytest.raises(ValueError, match="Config"):
        preprocess_case(cases[0], {"image_size": 32})
    with pytest.raises(ValueError, match="slices"):
        preprocess_case(cases[0], small_config(slice_start=20, n_slices=30))


def test_slice_sequence_survives_pickling_for_spawned_workers(cases):
    import pickle

    sequence = SliceSequence(cases, small_config(), shuffle=False)
    expected = sequence[0]
    clone = pickle.loads(pickle.dumps(sequence))
    np.testing.assert_array_equal(clone[0][1], expected[1])


def test_cache_built_by_parallel_workers_matches_building_one_by_one(cases, tmp_path):
    config = small_config()
    here = build_cache(cases, config, cache_dir=tmp_path / "here", workers=1, progress=False)
    parallel = build_cache(cases, config, cache_dir=tmp_path / "parallel", workers=2, progress=False)
    assert [p.name for p in here] == [p.name for p in parallel]
    for a, b in zip(here, parallel):
        np.testing.assert_array_equal(np.load(a / "x.npy"), np.load(b / "x.npy"))
        np.testing.assert_array_equal(np.load(a / "y.npy"), np.load(b / "y.npy"))
