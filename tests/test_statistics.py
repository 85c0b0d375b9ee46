"""Tests of gliseg_nb.metrics.statistics: bootstrap intervals and the empty-mask convention."""

import numpy as np
import pytest

from gliseg_nb.metrics import evaluate_case
from gliseg_nb.metrics.statistics import bootstrap_ci, empty_convention_effect, region_confidence_intervals


def _percentile_bootstrap_by_hand(values, rng, n_resamples, confidence_level=0.95):
    """The textbook percentile bootstrap: resample cases, take the means' quantiles."""
    picks = rng.integers(0, values.size, size=(n_resamples, values.size))
    means = values[picks].mean(axis=1)
    alpha = (1 - confidence_level) / 2
    return np.quantile(means, alpha), np.quantile(means, 1 - alpha)


def test_percentile_interval_matches_a_bootstrap_written_by_hand(rng):
    values = rng.beta(5, 2, size=25)
    low, high = bootstrap_ci(values, method="percentile", n_resamples=20000, seed=1)
    hand_low, hand_high = _percentile_bootstrap_by_hand(values, np.random.default_rng(2), 20000)
    # Two independent sets of 20000 resamples: their quantiles agree to Monte Carlo error.
    assert low == pytest.approx(hand_low, abs=0.006)
    assert high == pytest.approx(hand_high, abs=0.006)
    assert low < values.mean() < high


def test_interval_is_repeatable_and_narrows_with_more_cases(rng):
    few = rng.normal(0.8, 0.1, size=8)
    many = rng.normal(0.8, 0.1, size=128)
    assert bootstrap_ci(few, seed=3) == bootstrap_ci(few, seed=3)
    width_few = np.subtract(*bootstrap_ci(few)[::-1])
    width_many = np.subtract(*bootstrap_ci(many)[::-1])
    # The width shrinks like 1/sqrt(n): 16 times the cases, about a quarter of the width.
    assert 0.1 < width_many / width_few < 0.45


def test_bca_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true_mean, repeats = 0.7, 600
    covered = 0
    for repeat in range(repeats):
        sample = rng.normal(true_mean, 0.15, size=30)
        low, high = bootstrap_ci(sample, n_resamples=999, seed=repeat)
        covered += low <= true_mean <= high
    # Bootstrap intervals of a mean cover a little less than asked with 30 cases (about
    # 93 % for 95 %); a broken interval (too narrow or too wide) falls outside these bounds.
    assert 0.89 <= covered / repeats <= 0.975


def test_constant_values_give_a_zero_width_interval():
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)


def test_skewed_values_with_a_single_outlier_still_give_an_interval():
    # Dice values near 1 with one empty-mask penalty: BCa must not return NaN.
    values = [0.9] * 11 + [0.0]
    low, high = bootstrap_ci(values)
    assert np.isfinite(low) and np.isfinite(high)
    assert low < np.mean(values) <= high <= 0.9


@pytest.mark.parametrize("bad, message", [([0.5], "at least 2"), ([0.5, np.nan], "finite")])
def test_bad_values_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_ci(bad)


def test_confidence_level_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="confidence_level"):
        bootstrap_ci([0.1, 0.2], confidence_level=95)


def _labels_with(shape, **boxes):
    """A label volume with a box of each class given as class=(slice, slice, slice)."""
    labels = np.zeros(shape, dtype=np.uint8)
    for name, box in boxes.items():
        labels[box] = int(name[1:])
    return labels


@pytest.fixture
def three_cases():
    """Case a: ET present and half found; b: no ET, none predicted; c: no ET, some predicted."""
    shape = (20, 20, 10)
    edema = (slice(2, 18), slice(2, 18), slice(2, 8))
    et_truth = (slice(6, 14), slice(6, 14), slice(3, 7))
    et_half = (slice(6, 10), slice(6, 14), slice(3, 7))
    speck = (slice(9, 11), slice(9, 11), slice(4, 6))
    truth_a = _labels_with(shape, c2=edema, c3=et_truth)
    pred_a = _labels_with(shape, c2=edema, c3=et_half)
    truth_b = _labels_with(shape, c2=edema)
    pred_c = _labels_with(shape, c2=edema, c3=speck)
    return [
        {"case_id": "a", "scores": evaluate_case(pred_a, truth_a)},
        {"case_id": "b", "scores": evaluate_case(truth_b, truth_b)},
        {"case_id": "c", "scores": evaluate_case(pred_c, truth_b)},
    ]


def test_empty_convention_effect_counts_and_means(three_cases):
    et_dice_a = three_cases[0]["scores"]["ET"]["dice"]
    assert et_dice_a == pytest.approx(2 / 3)  # half the ET found: 2*128 / (256 + 128)
    effect = empty_convention_effect(three_cases, "ET")
    assert effect["mean_with_convention"] == pytest.approx((et_dice_a + 1.0 + 0.0) / 3)
    assert effect["mean_without_empty"] == pytest.approx(et_dice_a)
    assert (effect["n_cases"], effect["n_empty_truth"], effect["n_empty_both"], effect["n_false_alarm"]) == (3, 2, 1, 1)
    assert effect["empty_truth_cases"] == ["b", "c"]
    # The whole tumour is present in every case: nothing is left out, both means agree.
    wt = empty_convention_effect(three_cases, "WT")
    assert wt["n_empty_truth"] == 0
    assert wt["mean_with_convention"] == wt["mean_without_empty"]


def test_empty_convention_effect_without_any_region_present(three_cases):
    effect = empty_convention_effect(three_cases[1:], "ET")
    assert np.isnan(effect["mean_without_empty"])
    with pytest.raises(ValueError, match="region"):
        empty_convention_effect(three_cases, "XX")


def test_region_confidence_intervals_per_region(three_cases, rng):
    rows = [{"scores": {region: {"dice": float(value)} for region, value in zip(("WT", "TC", "ET"), triple)}}
            for triple in rng.uniform([0.7, 0.5, 0.0], [0.9, 0.8, 1.0], size=(12, 3))]
    intervals = region_confidence_intervals(rows)
    for index, region in enumerate(("WT", "TC", "ET")):
        values = [row["scores"][region]["dice"] for row in rows]
        assert intervals[region]["mean"] == pytest.approx(np.mean(values))
        assert intervals[region]["low"] < intervals[region]["mean"] < intervals[region]["high"]
        assert intervals[region]["n"] == 12
    # ET's values are spread over 0-1, WT's over 0.7-0.9: ET's interval is the wider.
    assert (intervals["ET"]["high"] - intervals["ET"]["low"]) > 2 * (intervals["WT"]["high"] - intervals["WT"]["low"])
    with pytest.raises(ValueError, match="hd95"):
        region_confidence_intervals(rows, metric="hd95")
