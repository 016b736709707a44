"""Calibration metrics for stated confidences: ECE, Brier, AUROC, PR-P / PR-N, reliability diagrams.

Inputs everywhere: ``conf`` (N,) stated confidences in [0, 1] and ``correct`` (N,) 0/1 outcomes
(1 = the answer / action was right). The names and conventions follow Xiong et al. 2024 ("Can LLMs
express their uncertainty?"), which the embodied-confidence paper (arXiv 2503.10628) reports:

- ECE: expected calibration error over 10 equal-width bins by default (``strategy="uniform"``);
  ``strategy="quantile"`` gives equal-mass bins. Bin edges follow netcal's ``ECE(10)``, which Xiong et
  al.'s code calls (``bins_closed="left"``, default): bins ``[a, b)`` as numpy's histogram makes them,
  the last one ``[a, 1]``, over the float edges ``np.linspace(0, 1, n_bins + 1)`` compared exactly.
  The float edges matter on confidences stated in steps of 10%: ``linspace`` gives 0.30000000000000004,
  0.6000000000000001 and 0.7000000000000001, so 0.3, 0.6 and 0.7 fall in the bin *below* (as in netcal)
  while 0.1, 0.2, 0.4, 0.5, 0.8 and 0.9 open their own bin. ``bins_closed="right"`` gives bins
  ``(a, b]`` with 0 in the first (this module's earlier convention, and scikit-learn's
  ``calibration_curve``). On continuous confidences the two agree; on a 10% grid they can differ by
  more than 0.1.
- Brier: mean squared difference between confidence and outcome (same as scikit-learn's
  ``brier_score_loss``).
- AUROC: area under the ROC curve of ``conf`` as a score for ``correct`` (scikit-learn).
- PR-P: average precision with CORRECT answers as positives, scored by ``conf``.
- PR-N: average precision with FAILURES as positives, scored by ``1 - conf``.
  ``pr_convention="xiong"`` (default) is that convention; ``"swap"`` swaps the two names
  (``PR-P`` then means failures as positives), because the embodied paper does not state which it
  uses.

AUROC and AP come from scikit-learn (well kept, and tied scores handled there); ECE and the reliability
diagram are hand-written because scikit-learn's ``calibration_curve`` drops empty bins, does not return
the counts ECE needs and closes its bins on the right, and netcal (the calibration library Xiong et al.
use) pulls gpytorch, pyro-ppl and tensorboard into the environment. Tests check the left-closed bins on
every edge 0, 0.1, ..., 1 by hand and the right-closed ones against ``calibration_curve``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["BINS_CLOSED", "ece", "brier", "auroc", "pr_p", "pr_n", "reliability_diagram", "calibration_summary"]


def _check(conf: Sequence[float], correct: Sequence[int | bool]) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(conf, dtype=float).reshape(-1)
    y = np.asarray(correct).reshape(-1)
    if c.shape != y.shape:
        raise ValueError(f"conf and correct must have the same length, got {c.shape[0]} and {y.shape[0]}")
    if c.size == 0:
        raise ValueError("conf and correct are empty")
    if not np.all(np.isfinite(c)):
        raise ValueError("conf holds NaN or infinite values; drop unparsable confidences first (and count them)")
    if c.min() < 0 or c.max() > 1:
        raise ValueError(f"confidences must lie in [0, 1], got range [{c.min()}, {c.max()}]")
    if y.dtype == bool:
        y = y.astype(int)
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("correct must hold only 0/1 (or booleans)")
    return c, y.astype(int)


BINS_CLOSED = ("left", "right")


def _bin_ids(c: np.ndarray, n_bins: int, strategy: str, closed: str = "left") -> tuple[np.ndarray, np.ndarray]:
    """Bin index (N,) and edges (n_bins+1,) for confidences ``c`` (see the module docstring).

    >>> [int(b) for b in _bin_ids(np.linspace(0, 10, 11).round() / 10, 10, "uniform")[0]]  # 0, 0.1, ..., 1
    [0, 1, 2, 2, 4, 5, 5, 6, 8, 9, 9]
    >>> [int(b) for b in _bin_ids(np.linspace(0, 10, 11).round() / 10, 10, "uniform", "right")[0]]
    [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if closed not in BINS_CLOSED:
        raise ValueError(f"bins_closed must be 'left' (netcal, [a, b)) or 'right' ((a, b], scikit-learn), "
                         f"got {closed!r}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.quantile(c, np.linspace(0.0, 1.0, n_bins + 1))
        edges[0], edges[-1] = 0.0, 1.0
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    if closed == "left":  # [a, b): as numpy's histogramdd in netcal; 1.0 joins the last bin
        ids = np.searchsorted(edges, c, side="right") - 1
    else:  # (a, b]; confidence 0 joins the first bin
        ids = np.searchsorted(edges, c, side="left") - 1
    return np.clip(ids, 0, n_bins - 1), edges


def reliability_diagram(conf, correct, n_bins: int = 10, strategy: str = "uniform",
                        bins_closed: str = "left") -> dict:
    """Per-bin mean confidence, accuracy and count (empty bins kept with ``None`` means).

    >>> d = reliability_diagram([0.05, 0.15, 0.95, 0.95], [0, 0, 1, 0], n_bins=10)
    >>> d["count"]
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    >>> d["accuracy"][9], d["confidence"][9], d["accuracy"][4]
    (0.5, 0.95, None)
    """
    c, y = _check(conf, correct)
    ids, edges = _bin_ids(c, n_bins, strategy, bins_closed)
    count, acc, mc = [], [], []
    for b in range(n_bins):
        m = ids == b
        k = int(m.sum())
        count.append(k)
        acc.append(float(y[m].mean()) if k else None)
        mc.append(float(c[m].mean()) if k else None)
    return {"edges": [float(e) for e in edges], "count": count, "accuracy": acc, "confidence": mc,
            "strategy": strategy, "bins_closed": bins_closed}


def ece(conf, correct, n_bins: int = 10, strategy: str = "uniform", bins_closed: str = "left") -> float:
    """Expected calibration error: sum over bins of (bin size / N) * |accuracy - mean confidence|.

    >>> ece([0.9, 0.9, 0.9, 0.9], [1, 1, 1, 0])   # one bin: |0.75 - 0.9|
    0.15
    >>> round(ece([0.2, 0.8], [0, 1]), 10)          # two bins: (0.2 + 0.2) / 2
    0.2
    >>> ece([0.8, 0.85], [1, 0]), ece([0.8, 0.85], [1, 0], bins_closed="right")  # [0.8, 0.9) vs (0.7, 0.8]
    (0.325, 0.525)
    """
    c, y = _check(conf, correct)
    d = reliability_diagram(c, y, n_bins, strategy, bins_closed)
    n = len(c)
    total = sum(k / n * abs(a - m) for k, a, m in zip(d["count"], d["accuracy"], d["confidence"]) if k)
    return float(round(total, 12))


def brier(conf, correct) -> float:
    """Mean of (conf - correct)^2.

    >>> brier([1.0, 0.5, 0.0], [1, 1, 1])
    0.4166666666666667
    """
    c, y = _check(conf, correct)
    return float(np.mean((c - y) ** 2))


def _one_class(y: np.ndarray) -> bool:
    return y.min() == y.max()


def auroc(conf, correct) -> float:
    """Area under the ROC curve of ``conf`` separating correct from wrong (NaN with one class only).

    >>> auroc([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]), auroc([0.9, 0.8, 0.3, 0.1], [0, 1, 1, 0])
    (1.0, 0.5)
    """
    from sklearn.metrics import roc_auc_score

    c, y = _check(conf, correct)
    return math.nan if _one_class(y) else float(roc_auc_score(y, c))


def _ap(scores: np.ndarray, positives: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    if positives.sum() == 0:  # no positive: AP undefined
        return math.nan
    return float(average_precision_score(positives, scores))


def pr_p(conf, correct, convention: str = "xiong") -> float:
    """PR-P: average precision with correct answers as positives scored by ``conf`` ("xiong").

    >>> pr_p([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])   # precisions at the two positives: 1, 2/3
    0.8333333333333333
    """
    c, y = _check(conf, correct)
    if convention == "xiong":
        return _ap(c, y)
    if convention == "swap":
        return _ap(1 - c, 1 - y)
    raise ValueError(f"convention must be 'xiong' or 'swap', got {convention!r}")


def pr_n(conf, correct, convention: str = "xiong") -> float:
    """PR-N: average precision with failures as positives scored by ``1 - conf`` ("xiong").

    >>> pr_n([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])   # failures ranked by 1-conf: 0.9 hit, 0.7 miss, 0.2 hit
    0.8333333333333333
    """
    c, y = _check(conf, correct)
    if convention == "xiong":
        return _ap(1 - c, 1 - y)
    if convention == "swap":
        return _ap(c, y)
    raise ValueError(f"convention must be 'xiong' or 'swap', got {convention!r}")


def calibration_summary(conf, correct, n_bins: int = 10, strategy: str = "uniform",
                        pr_convention: str = "xiong", bins_closed: str = "left") -> dict:
    """All metrics at once, plus n, accuracy and mean confidence (NaN where undefined).

    >>> s = calibration_summary([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    >>> s["auroc"], s["pr_p"], s["n"], s["accuracy"]
    (1.0, 1.0, 4, 0.5)
    """
    c, y = _check(conf, correct)
    return {"n": int(len(c)), "accuracy": float(y.mean()), "mean_conf": float(c.mean()),
            "ece": ece(c, y, n_bins, strategy, bins_closed), "brier": brier(c, y), "auroc": auroc(c, y),
            "pr_p": pr_p(c, y, pr_convention), "pr_n": pr_n(c, y, pr_convention)}
