"""Calibration metrics for stated confidences: ECE, Brier, AUROC, PR-P / PR-N, reliability diagrams.

Inputs everywhere: ``conf`` (N,) stated confidences in [0, 1] and ``correct`` (N,) 0/1 outcomes
(1 = the answer / action was right). The names and conventions follow Xiong et al. 2024 ("Can LLMs
express their uncertainty?"), which the embodied-confidence paper (arXiv 2503.10628) reports:

- ECE: expected calibration error over 10 equal-width bins by default (``strategy="uniform"``);
  ``strategy="quantile"`` gives equal-mass bins. Bins are right-closed, the first one includes 0.
- Brier: mean squared difference between confidence and outcome (same as scikit-learn's
  ``brier_score_loss``).
- AUROC: area under the ROC curve of ``conf`` as a score for ``correct`` (scikit-learn).
- PR-P: average precision with CORRECT answers as positives, scored by ``conf``.
- PR-N: average precision with FAILURES as positives, scored by ``1 - conf``.
  ``pr_convention="xiong"`` (default) is that convention; ``"swap"`` swaps the two names
  (``PR-P`` then means failures as positives), because the embodied paper does not state which it
  uses.

AUROC and AP come from scikit-learn (well kept, and tied scores handled there); ECE and the reliability
diagram are hand-written because scikit-learn's ``calibration_curve`` drops empty bins and does not
return the counts ECE needs.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["ece", "brier", "auroc", "pr_p", "pr_n", "reliability_diagram", "calibration_summary"]


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


def _bin_ids(c: np.ndarray, n_bins: int, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    """Bin index (N,) and edges (n_bins+1,) for confidences ``c``."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.quantile(c, np.linspace(0.0, 1.0, n_bins + 1))
        edges[0], edges[-1] = 0.0, 1.0
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    # right-closed bins (a, b]; confidence 0 goes to the first bin
    ids = np.clip(np.searchsorted(edges, c, side="left") - 1, 0, n_bins - 1)
    return ids, edges


def reliability_diagram(conf, correct, n_bins: int = 10, strategy: str = "uniform") -> dict:
    """Per-bin mean confidence, accuracy and count (empty bins kept with ``None`` means).

    >>> d = reliability_diagram([0.05, 0.15, 0.95, 0.95], [0, 0, 1, 0], n_bins=10)
    >>> d["count"]
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    >>> d["accuracy"][9], d["confidence"][9], d["accuracy"][4]
    (0.5, 0.95, None)
    """
    c, y = _check(conf, correct)
    ids, edges = _bin_ids(c, n_bins, strategy)
    count, acc, mc = [], [], []
    for b in range(n_bins):
        m = ids == b
        k = int(m.sum())
        count.append(k)
        acc.append(float(y[m].mean()) if k else None)
        mc.append(float(c[m].mean()) if k else None)
    return {"edges": [float(e) for e in edges], "count": count, "accuracy": acc, "confidence": mc,
            "strategy": strategy}


def ece(conf, correct, n_bins: int = 10, strategy: str = "uniform") -> float:
    """Expected calibration error: sum over bins of (bin size / N) * |accuracy - mean confidence|.

    >>> ece([0.9, 0.9, 0.9, 0.9], [1, 1, 1, 0])   # one bin: |0.75 - 0.9|
    0.15
    >>> round(ece([0.2, 0.8], [0, 1]), 10)          # two bins: (0.2 + 0.2) / 2
    0.2
    """
    c, y = _check(conf, correct)
    d = reliability_diagram(c, y, n_bins, strategy)
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
                        pr_convention: str = "xiong") -> dict:
    """All metrics at once, plus n, accuracy and mean confidence (NaN where undefined).

    >>> s = calibration_summary([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    >>> s["auroc"], s["pr_p"], s["n"], s["accuracy"]
    (1.0, 1.0, 4, 0.5)
    """
    c, y = _check(conf, correct)
    return {"n": int(len(c)), "accuracy": float(y.mean()), "mean_conf": float(c.mean()),
            "ece": ece(c, y, n_bins, strategy), "brier": brier(c, y), "auroc": auroc(c, y),
            "pr_p": pr_p(c, y, pr_convention), "pr_n": pr_n(c, y, pr_convention)}
