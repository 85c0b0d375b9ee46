"""How sure a mean score is: bootstrap confidence intervals over cases, and what the
empty-mask convention does to a region's mean.

A mean Dice over a handful of test patients is one draw among many possible test sets. The
bootstrap (Efron 1979) estimates how much it would move: resample the cases with
replacement many times, recompute the mean each time, and read the spread of those means.
`scipy.stats.bootstrap` does the resampling; this module applies it to the per-case rows
of `gliseg_nb.metrics.evaluate_case` / `evaluate_folder`, region by region.

Public API
----------
bootstrap_ci(values)                        confidence interval of the mean of per-case values
region_confidence_intervals(rows)           mean and interval of one metric, per region
empty_convention_effect(rows, region)       the region's mean with and without the cases whose
                                            ground truth is empty
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np

from ..labels import REGIONS

__all__ = ["bootstrap_ci", "region_confidence_intervals", "empty_convention_effect"]


def _scores_of(rows):
    """Per-case score dicts from `evaluate_folder` rows or plain `evaluate_case` dicts."""
    if not rows:
        raise ValueError("no scores given: need at least one case")
    return [row["scores"] if "scores" in row else row for row in rows]


def bootstrap_ci(values, confidence_level=0.95, n_resamples=9999, method="BCa", seed=0):
    """Bootstrap confidence interval of the mean of per-case values.

    The cases are resampled with replacement (`scipy.stats.bootstrap`); the interval says
    where the mean over another test set of the same size, drawn from the same population,
    would likely fall. It is only as good as the cases are representative: a few cases give
    a wide interval, and no number of resamples makes it narrower.

    Parameters
    ----------
    values : array-like of float
        One value per case (e.g. the WT Dice of each test patient), at least two.
    confidence_level : float, default=0.95
        Coverage of the interval, between 0 and 1.
    n_resamples : int, default=9999
        Bootstrap resamples.
    method : {"BCa", "percentile", "basic"}, default="BCa"
        `scipy.stats.bootstrap`'s method. BCa (bias-corrected and accelerated) corrects for
        skewed distributions, such as Dice values piled up near 1 with a few zeros. Where
        BCa is undefined (e.g. a resampling distribution with no spread), the percentile
        interval is returned instead.
    seed : int, default=0
        Seed of the resampling, so that the interval is repeatable.

    Returns
    -------
    tuple of float
        ``(low, high)``. When every value is the same, both equal it.

    Raises
    ------
    ValueError
        If fewer than two values are given, a value is not finite, or `confidence_level`
        is not strictly between 0 and 1.
    """
    from scipy import stats

    values = np.asarray(values, dtype=float).ravel()
    if values.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 values, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError("bootstrap_ci: the values must be finite (found NaN or infinity)")
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be between 0 and 1, got {confidence_level}")
    if np.ptp(values) == 0:
        # No spread: every resample has the same mean (BCa would divide by zero).
        return float(values[0]), float(values[0])
    # scipy 1.15 renamed random_state to rng; the course supports older scipy too.
    parameters = inspect.signature(stats.bootstrap).parameters
    seed_argument = "rng" if "rng" in parameters else "random_state"

    def interval(chosen_method):
        with warnings.catch_warnings():
            # BCa warns and returns NaN where it is undefined; we fall back below.
            warnings.simplefilter("ignore", getattr(stats, "DegenerateDataWarning", RuntimeWarning))
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.bootstrap(
                (values,), np.mean, n_resamples=int(n_resamples), confidence_level=confidence_level,
                method=chosen_method, vectorized=True, **{seed_argument: np.random.default_rng(seed)})
        return float(result.confidence_interval.low), float(result.confidence_interval.high)

    low, high = interval(method)
    if not (np.isfinite(low) and np.isfinite(high)):
        low, high = interval("percentile")
    return low, high


def region_confidence_intervals(rows, metric="dice", confidence_level=0.95, n_resamples=9999, seed=0):
    """Mean of one metric over cases, per region, with its bootstrap confidence interval.

    Parameters
    ----------
    rows : list of dict
        Rows of `evaluate_folder` (``{"case_id", "scores"}``) or plain `evaluate_case`
        dicts, at least two.
    metric : str, default="dice"
        Any per-region key of `evaluate_case` (``"dice"``, ``"hd95"``, ...).
    confidence_level : float, default=0.95
        Coverage of the interval.
    n_resamples : int, default=9999
        Bootstrap resamples.
    seed : int, default=0
        Seed of the resampling.

    Returns
    -------
    dict
        ``{region: {"mean", "low", "high", "n"}}`` for WT, TC and ET.

    Raises
    ------
    ValueError
        If fewer than two cases are given or a case lacks `metric`.
    """
    per_case = _scores_of(rows)
    intervals = {}
    for region in REGIONS:
        try:
            values = np.array([scores[region][metric] for scores in per_case], dtype=float)
        except KeyError:
            raise ValueError(f"a case has no {metric!r} score for {region}") from None
        low, high = bootstrap_ci(values, confidence_level=confidence_level, n_resamples=n_resamples, seed=seed)
        intervals[region] = {"mean": float(values.mean()), "low": low, "high": high, "n": int(values.size)}
    return intervals


def empty_convention_effect(rows, region="ET", metric="dice"):
    """A region's mean score with the BraTS empty-mask convention, and without those cases.

    BraTS scores a case whose ground truth has none of the region (often the enhancing
    tumour) Dice 1 if the prediction has none either, and Dice 0 if it predicts even one
    voxel of it. Such cases pull the mean towards 1 or 0 depending on a handful of voxels.
    This gives the mean over every case (the convention, what BraTS reports) next to the
    mean over the cases whose ground truth holds the region (the cases where the metric
    measures overlap at all).

    Parameters
    ----------
    rows : list of dict
        Rows of `evaluate_folder` or plain `evaluate_case` dicts (they carry
        ``volume_truth_ml`` and ``volume_pred_ml``).
    region : {"WT", "TC", "ET"}, default="ET"
        The region.
    metric : str, default="dice"
        The score averaged (``"hd95"`` works too: 0 mm / 373.13 mm by the convention).

    Returns
    -------
    dict
        ``mean_with_convention`` (over all cases), ``mean_without_empty`` (over cases
        whose truth holds the region; NaN if there is none), ``n_cases``,
        ``n_empty_truth`` (cases whose truth lacks the region), ``n_empty_both`` (of those,
        predicted empty too: scored as perfect), ``n_false_alarm`` (truth empty, prediction
        not: scored as a total miss) and ``empty_truth_cases`` (their ids, where known).

    Raises
    ------
    ValueError
        If `region` is not WT, TC or ET, or no case is given.
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {region!r}")
    per_case = _scores_of(rows)
    ids = [row.get("case_id") if "scores" in row else None for row in rows]
    values = np.array([scores[region][metric] for scores in per_case], dtype=float)
    empty_truth = np.array([scores[region]["volume_truth_ml"] == 0 for scores in per_case])
    empty_pred = np.array([scores[region]["volume_pred_ml"] == 0 for scores in per_case])
    kept = values[~empty_truth]
    return {
        "mean_with_convention": float(values.mean()),
        "mean_without_empty": float(kept.mean()) if kept.size else float("nan"),
        "n_cases": int(values.size),
        "n_empty_truth": int(empty_truth.sum()),
        "n_empty_both": int((empty_truth & empty_pred).sum()),
        "n_false_alarm": int((empty_truth & ~empty_pred).sum()),
        "empty_truth_cases": [case_id for case_id, empty in zip(ids, empty_truth) if empty],
    }
