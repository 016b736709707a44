"""Per-pair metrics for imputed outcome vectors (each pair's F features form one sample).

- ``r2``: coefficient of determination over the features of one pair, ``1 - SSE / SST`` with SST
  around the pair's true feature mean (sklearn's ``r2_score`` on that pair's vectors).
- ``cosine``: cosine similarity of the predicted and true *change from control*,
  ``cos(yhat - y_ctrl, y - y_ctrl)`` with ``y_ctrl`` the control's true outcome in the same context
  (undefined, NaN, for the control action itself).
- ``rmse``: root mean squared error over the features.
- ``mse``: mean squared error; ``relative_mse`` = mean MSE of an estimator / mean MSE of "mean over
  actions" over the same pairs (below 1 beats that baseline).
"""
from __future__ import annotations

import numpy as np


def per_pair_metrics(pred: np.ndarray, true: np.ndarray, ctrl: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """pred, true: (P, F); ctrl: (P, F) control outcome per pair's context, or None.

    >>> m = per_pair_metrics(np.array([[1., 2., 3.]]), np.array([[1., 2., 3.]]))
    >>> float(m["r2"][0]), float(m["rmse"][0])
    (1.0, 0.0)
    """
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"pred and true must both be (P, F); got {pred.shape} and {true.shape}")
    err = pred - true
    mse = (err**2).mean(axis=1)
    sst = ((true - true.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(sst > 0, 1.0 - (err**2).sum(axis=1) / np.where(sst > 0, sst, 1.0), np.nan)
    out = {"r2": r2, "rmse": np.sqrt(mse), "mse": mse}
    if ctrl is not None:
        dp, dt = pred - ctrl, true - ctrl
        den = np.linalg.norm(dp, axis=1) * np.linalg.norm(dt, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["cosine"] = np.where(den > 1e-12, (dp * dt).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)
    return out


def summarise(per_pair: dict[str, np.ndarray], baseline_mse: np.ndarray | None = None) -> dict[str, float]:
    """Aggregate per-pair metrics: mean R^2, median R^2, mean cosine (NaNs left out and counted),
    RMSE over all pairs and features, relative MSE against ``baseline_mse`` (per-pair MSEs)."""
    r2 = per_pair["r2"]
    out = {
        "r2_mean": float(np.nanmean(r2)) if np.isfinite(r2).any() else float("nan"),
        "r2_median": float(np.nanmedian(r2)) if np.isfinite(r2).any() else float("nan"),
        "rmse": float(np.sqrt(np.mean(per_pair["mse"]))),
        "n_pairs": int(len(r2)),
    }
    if "cosine" in per_pair:
        cos = per_pair["cosine"]
        out["cosine_mean"] = float(np.nanmean(cos)) if np.isfinite(cos).any() else float("nan")
        out["n_cosine_undefined"] = int((~np.isfinite(cos)).sum())
    if baseline_mse is not None:
        b = float(np.mean(baseline_mse))
        out["relative_mse"] = float(np.mean(per_pair["mse"]) / b) if b > 0 else float("nan")
    return out
