"""Tests of the on-the-fly randomisation (gliseg_nb.augment)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from gliseg_nb import Config
from gliseg_nb.augment import random_appearance, random_spatial, randomize_batch


@pytest.fixture
def batch(rng):
    """Four 32 px slices, 2 channels: a disc of brain (z-score-like values) on 0, with a
    square 'tumour' labelled 2 inside."""
    size = 32
    rows, cols = np.mgrid[:size, :size]
    brain = (rows - 15.5) ** 2 + (cols - 15.5) ** 2 < 12**2
    x = np.zeros((4, size, size, 2), dtype=np.float32)
    x[:, brain] = rng.normal(0.0, 1.0, size=(4, int(brain.sum()), 2))
    y = np.zeros((4, size, size), dtype=np.uint8)
    y[:, 12:18, 12:18] = 2
    y[:, 14:16, 14:16] = 3
    return x, y, brain


def test_appearance_keeps_background_and_changes_brain(batch):
    x, _, brain = batch
    out = random_appearance(tf.constant(x), tf.constant([1, 2], tf.int64)).numpy()
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, ~brain], 0.0)
    assert np.all(np.isfinite(out))
    # Every slice-channel is changed, and not all the same way (per-slice draws).
    change = np.abs(out[:, brain] - x[:, brain]).mean(axis=1)
    assert np.all(change > 1e-3)
    assert np.std(out[:, brain].mean(axis=1)) > 1e-3


def test_appearance_is_deterministic_per_seed(batch):
    x = tf.constant(batch[0])
    first = random_appearance(x, tf.constant([5, 6], tf.int64)).numpy()
    again = random_appearance(x, tf.constant([5, 6], tf.int64)).numpy()
    other = random_appearance(x, tf.constant([5, 7], tf.int64)).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_appearance_with_nothing_random_is_the_identity(batch):
    x = batch[0]
    ranges = {"log_gamma_sigma": 0.0, "contrast": (1.0, 1.0), "shift": (0.0, 0.0),
              "blur_mix": (0.0, 0.0), "noise": (0.0, 0.0)}
    out = random_appearance(tf.constant(x), tf.constant([0, 1], tf.int64), ranges).numpy()
    np.testing.assert_allclose(out, x, atol=1e-4)


def test_spatial_moves_labels_with_the_image_and_invents_no_class(batch):
    x, y, _ = batch
    # Make channel 0 a copy of the label map, so image and labels can be compared.
    x = x.copy()
    x[..., 0] = y
    out_x, out_y = random_spatial(tf.constant(x), tf.constant(y), tf.constant([3, 4], tf.int64),
                                  {"rotation_degrees": 30.0, "scale": (0.8, 1.2)})
    out_x, out_y = out_x.numpy(), out_y.numpy()
    assert out_y.dtype == np.uint8 and out_y.shape == y.shape
    assert set(np.unique(out_y)) <= {0, 2, 3}
    assert not np.array_equal(out_y, y)  # something moved
    # Where the labels say tumour, the transformed "label image" is close to it too.
    tumour = out_y == 2
    assert tumour.sum() > 20
    assert np.mean(np.abs(out_x[..., 0][tumour] - 2.0) < 0.75) > 0.8


def test_spatial_identity_when_ranges_are_zero(batch):
    x, y, _ = batch
    out_x, out_y = random_spatial(tf.constant(x), tf.constant(y), tf.constant([3, 4], tf.int64),
                                  {"rotation_degrees": 0.0, "scale": (1.0, 1.0), "shift_fraction": 0.0})
    np.testing.assert_allclose(out_x.numpy(), x, atol=1e-5)
    np.testing.assert_array_equal(out_y.numpy(), y)


def test_randomize_batch_follows_the_config(batch):
    x, y, _ = batch
    seed = tf.constant([9, 9], tf.int64)
    plain = Config.preset("quick", augment_appearance=False, augment_spatial=False)
    same_x, same_y = randomize_batch(tf.constant(x), tf.constant(y), seed, plain)
    np.testing.assert_array_equal(same_x.numpy(), x)
    np.testing.assert_array_equal(same_y.numpy(), y)
    appearance = plain.replace(augment_appearance=True)
    new_x, new_y = randomize_batch(tf.constant(x), tf.constant(y), seed, appearance)
    np.testing.assert_array_equal(new_y.numpy(), y)  # appearance never moves labels
    assert not np.allclose(new_x.numpy(), x)


def test_report_preset_does_not_randomise():
    report = Config.preset("report")
    assert not report.augment_appearance and not report.augment_spatial


def test_make_dataset_randomises_training_batches_only(tmp_path):
    """The pipeline's call site: training batches randomised when the Config asks,
    evaluation batches never."""
    from layout_fixtures import write_layout

    from gliseg_nb.data import find_cases
    from gliseg_nb.pipeline import make_dataset

    cases = find_cases(write_layout(tmp_path / "data", "brats2020", n_cases=2, shape=(24, 24, 16)))
    plain = Config.preset("report", slice_start=0, n_slices=16, image_size=16, depth=2, batch_size=8,
                          shuffle_buffer=32, modalities=("flair", "t1ce"))
    randomised = plain.replace(augment_appearance=True, augment_spatial=True)
    cache = tmp_path / "cache"

    def first_batch(config, training):
        x, y = next(iter(make_dataset(cases, config, training=training, cache_dir=cache, progress=False)))
        return x.numpy(), y.numpy()

    x_plain, y_plain = first_batch(plain, True)
    x_random, y_random = first_batch(randomised, True)
    assert x_random.shape == x_plain.shape and y_random.shape == y_plain.shape
    assert not np.allclose(x_random, x_plain)
    np.testing.assert_allclose(y_random.sum(axis=-1), 1.0)  # labels still one-hot
    x_eval, _ = first_batch(randomised, False)
    x_eval_plain, _ = first_batch(plain, False)
    np.testing.assert_array_equal(x_eval, x_eval_plain)
