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
    d = cal.reliability_diagram([0.0, 0.1, 0.1000001, 1.0], [0, 0, 1, 1])
    assert d["count"][0] == 2 and d["count"][1] == 1 and d["count"][9] == 1


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
