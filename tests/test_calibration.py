"""workbench.calibration: hand-computed cases, scikit-learn agreement, input errors, doctests."""
import doctest
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from workbench import calibration as cal


def test_doctests():
    res = doctest.testmod(cal, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 5 and res.failed == 0


def test_ece_hand_computed_three_bins():
    # bins (0,.1]: conf .1 wrong; (.5,.6]: .6 .6 right/wrong; (.9,1]: 1.0 right
    conf = [0.1, 0.6, 0.6, 1.0]
    y = [0, 1, 0, 1]
    # |0 - .1|*1/4 + |.5 - .6|*2/4 + |1 - 1|*1/4 = .025 + .05
    assert cal.ece(conf, y) == pytest.approx(0.075)


def test_ece_perfectly_calibrated_is_zero_and_worst_case_is_one():
    assert cal.ece([0.5] * 4, [1, 0, 1, 0]) == pytest.approx(0.0)
    assert cal.ece([1.0, 1.0, 0.0], [0, 0, 1]) == pytest.approx(1.0)


def test_ece_quantile_bins_equal_mass():
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=400)
    y = (rng.uniform(size=400) < conf).astype(int)
    d = cal.reliability_diagram(conf, y, n_bins=4, strategy="quantile")
    assert d["count"] == [100, 100, 100, 100]
    # hand recomputation from the diagram
    e = sum(k / 400 * abs(a - m) for k, a, m in zip(d["count"], d["accuracy"], d["confidence"]))
    assert cal.ece(conf, y, n_bins=4, strategy="quantile") == pytest.approx(e)
    # outcomes drawn with probability conf: well calibrated, small ECE
    assert cal.ece(conf, y) < 0.1


def test_reliability_bin_edges_right_closed():
    d = cal.reliability_diagram([0.0, 0.1, 0.1000001, 1.0], [0, 0, 1, 1], bins_closed="right")
    assert d["count"][0] == 2 and d["count"][1] == 1 and d["count"][9] == 1
    d = cal.reliability_diagram([0.0, 0.0999999, 0.1, 1.0], [0, 0, 1, 1])  # default: [a, b) as netcal
    assert d["count"][0] == 2 and d["count"][1] == 1 and d["count"][9] == 1 and d["bins_closed"] == "left"


GRID = [k / 10 for k in range(11)]  # 0, 0.1, ..., 1.0: what "80%"-style answers give
# Bin of each grid value under netcal's ECE(10): [a, b) bins over np.linspace(0, 1, 11), compared exactly.
# linspace's edges 3, 6 and 7 are 0.30000000000000004, 0.6000000000000001, 0.7000000000000001, just above
# the literals 0.3, 0.6, 0.7, so those land one bin lower; 1.0 joins the last bin [0.9, 1].
LEFT_BINS = [0, 1, 2, 2, 4, 5, 5, 6, 8, 9, 9]
RIGHT_BINS = [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # (a, b]: each value closes the bin below; 0 joins the first


def test_bin_of_every_grid_edge():
    assert np.linspace(0, 1, 11)[[3, 6, 7]].tolist() == [0.30000000000000004, 0.6000000000000001, 0.7000000000000001]
    for closed, expected in (("left", LEFT_BINS), ("right", RIGHT_BINS)):
        for v, b in zip(GRID, expected):
            d = cal.reliability_diagram([v], [1], bins_closed=closed)
            assert d["count"][b] == 1 and sum(d["count"]) == 1, (closed, v)


@pytest.mark.parametrize("k", range(1, 10))
def test_ece_hand_computed_on_each_edge(k):
    e = k / 10
    conf, y = [e - 0.05, e], [0, 1]
    merged = abs(0.5 - (e - 0.025))  # one bin: accuracy 1/2, mean confidence e - 0.025
    split = 0.5 * (e - 0.05) + 0.5 * (1 - e)  # two bins of one answer each
    left = merged if LEFT_BINS[k] == k - 1 else split  # e - 0.05 sits in bin k - 1; e too only for 0.3, 0.6, 0.7
    assert cal.ece(conf, y) == pytest.approx(left)
    assert cal.ece(conf, y, bins_closed="right") == pytest.approx(merged)  # e closes the bin of e - 0.05


def test_confidence_exactly_zero_and_one():
    for closed in cal.BINS_CLOSED:
        for strategy in ("uniform", "quantile"):
            d = cal.reliability_diagram([0.0, 0.0, 1.0, 0.5], [0, 0, 1, 1], n_bins=4, strategy=strategy,
                                        bins_closed=closed)
            assert sum(d["count"]) == 4 and d["count"][-1] >= 1, (closed, strategy)  # nothing dropped
            if strategy == "uniform":  # (quantile edges repeat 0 here: [0, 0, .25, .625, 1])
                assert d["count"][0] == 2, closed
        assert cal.ece([0.0, 1.0], [0, 1], bins_closed=closed) == 0.0
        assert cal.ece([0.0], [1], bins_closed=closed) == 1.0 and cal.ece([1.0], [0], bins_closed=closed) == 1.0
        assert cal.ece([1.0, 0.95], [0, 1], bins_closed=closed) == pytest.approx(0.475)  # one last bin
        assert cal.ece([0.0, 0.05], [1, 0], bins_closed=closed) == pytest.approx(0.475)  # one first bin


def _grid_sample(rng, kind, n):
    if kind == "continuous":
        return rng.uniform(size=n)
    step = {"10%": 10, "5%": 20, "1%": 100}[kind]
    return rng.integers(0, step + 1, size=n) / step


@pytest.mark.parametrize("kind", ["10%", "5%", "1%", "continuous"])
def test_left_bins_match_numpy_histogram_and_scipy_binned_mean(kind):
    """netcal's ECE bins with np.histogramdd (counts) and scipy's binned_statistic_dd (means) over
    np.linspace(0, 1, n_bins + 1): the same calls give the same bins as the default here."""
    from scipy.stats import binned_statistic

    rng = np.random.default_rng(7)
    for _ in range(30):
        conf = _grid_sample(rng, kind, int(rng.integers(1, 60)))
        y = rng.integers(0, 2, size=len(conf))
        edges = np.linspace(0, 1, 11)
        d = cal.reliability_diagram(conf, y)
        assert d["count"] == np.histogram(conf, bins=edges)[0].tolist()
        mean_c = binned_statistic(conf, conf, "mean", bins=edges)[0]
        mean_y = binned_statistic(conf, y, "mean", bins=edges)[0]
        counts = np.array(d["count"])
        ref = float(np.sum(counts[counts > 0] / len(conf) * np.abs(mean_y - mean_c)[counts > 0]))
        assert cal.ece(conf, y) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("kind", ["10%", "5%", "continuous"])
def test_right_bins_match_sklearn_calibration_curve(kind):
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(3)
    for _ in range(30):
        conf = _grid_sample(rng, kind, 40)
        y = rng.integers(0, 2, size=40)
        d = cal.reliability_diagram(conf, y, bins_closed="right")
        acc, mc = calibration_curve(y, conf, n_bins=10, strategy="uniform")  # non-empty bins only
        assert [a for a in d["accuracy"] if a is not None] == pytest.approx(acc.tolist())
        assert [m for m in d["confidence"] if m is not None] == pytest.approx(mc.tolist())


def test_conventions_agree_on_continuous_and_differ_on_grid():
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=300)
    y = (rng.uniform(size=300) < conf).astype(int)
    assert cal.ece(conf, y) == cal.ece(conf, y, bins_closed="right")  # no value on an edge
    conf = rng.integers(0, 11, size=300) / 10
    y = (rng.uniform(size=300) < conf).astype(int)
    assert abs(cal.ece(conf, y) - cal.ece(conf, y, bins_closed="right")) > 0.01


@pytest.mark.parametrize("seed", range(5))
def test_against_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 50
    conf = np.round(rng.uniform(size=n), 2)  # rounded: ties, as stated confidences have
    y = rng.integers(0, 2, size=n)
    assert cal.brier(conf, y) == pytest.approx(brier_score_loss(y, conf))
    assert cal.auroc(conf, y) == pytest.approx(roc_auc_score(y, conf))
    assert cal.pr_p(conf, y) == pytest.approx(average_precision_score(y, conf))
    assert cal.pr_n(conf, y) == pytest.approx(average_precision_score(1 - y, 1 - conf))
    assert cal.pr_p(conf, y, "swap") == pytest.approx(cal.pr_n(conf, y))


def test_auroc_hand_counted_pairs():
    # 2 positives x 2 negatives; pairs ordered right: (.8>.3), (.8>.1), (.4>.1); (.4<.6) wrong -> 3/4
    assert cal.auroc([0.8, 0.4, 0.6, 0.1], [1, 1, 0, 0]) == pytest.approx(0.75)


def test_single_class_gives_nan_not_crash():
    s = cal.calibration_summary([0.9, 0.7], [1, 1])
    assert math.isnan(s["auroc"]) and math.isnan(s["pr_n"]) and s["pr_p"] == pytest.approx(1.0)


@pytest.mark.parametrize("conf,y,msg", [
    ([0.5], [1, 0], "same length"),
    ([], [], "empty"),
    ([1.5], [1], r"\[0, 1\]"),
    ([float("nan")], [1], "NaN"),
    ([0.5], [2], "0/1"),
])
def test_bad_input(conf, y, msg):
    with pytest.raises(ValueError, match=msg):
        cal.ece(conf, y)


def test_bad_options():
    with pytest.raises(ValueError, match="strategy"):
        cal.ece([0.5], [1], strategy="equal")
    with pytest.raises(ValueError, match="convention"):
        cal.pr_p([0.5, 0.2], [1, 0], convention="other")
    with pytest.raises(ValueError, match="n_bins"):
        cal.ece([0.5], [1], n_bins=0)
    with pytest.raises(ValueError, match="bins_closed must be 'left'"):
        cal.ece([0.5], [1], bins_closed="both")
