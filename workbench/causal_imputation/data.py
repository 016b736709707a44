"""Data model for causal imputation: a partially observed tensor ``Y[context, action, feature]``.

``ImputationData`` holds the outcome tensor ``Y`` (C, A, F), the boolean ``mask`` (C, A) of measured
(context, action) pairs, and labels for contexts, actions and features. Unmeasured pairs hold NaN in
``Y`` so that nothing can use them by accident. ``truth`` (optional, (C, A, F)) carries the full
noise-free or noisy tensor when the data are synthetic.

Loaders read long-format tables (one row per measured pair or replicate: ``context, action,
feature_1, ..., feature_F``) from CSV or Parquet, the shape of CMAP/L1000-style level-5 signatures
after averaging replicates.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd


@dataclasses.dataclass
class ImputationData:
    """Partially observed outcome tensor.

    Y: (C, A, F) float; NaN where ``mask`` is False.
    mask: (C, A) bool; True where the pair was measured.
    contexts, actions, features: labels, lengths C, A, F (unique strings).
    control: label of the control action (used by the fixed-effect baseline and the cosine metric), or None.
    truth: optional (C, A, F) full tensor (synthetic data only).
    """

    Y: np.ndarray
    mask: np.ndarray
    contexts: list[str]
    actions: list[str]
    features: list[str]
    control: str | None = None
    truth: np.ndarray | None = None

    def __post_init__(self):
        self.Y = np.asarray(self.Y, dtype=np.float64)
        self.mask = np.asarray(self.mask, dtype=bool)
        self.contexts = [str(c) for c in self.contexts]
        self.actions = [str(a) for a in self.actions]
        self.features = [str(f) for f in self.features]
        validate(self)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.Y.shape

    @property
    def control_index(self) -> int | None:
        return None if self.control is None else self.actions.index(self.control)

    def with_mask(self, mask: np.ndarray) -> "ImputationData":
        """A copy observing only ``mask`` (must be a subset of the measured pairs, or any pattern
        when ``truth`` is known)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self.mask.shape:
            raise ValueError(f"mask shape {mask.shape} != {self.mask.shape}")
        if self.truth is None and np.any(mask & ~self.mask):
            raise ValueError("new mask observes pairs that were never measured and no truth is known")
        # measured pairs keep their (possibly noisy) values; newly observed ones come from the truth
        src = self.Y if self.truth is None else np.where(self.mask[:, :, None], self.Y, self.truth)
        Y = np.where(mask[:, :, None], src, np.nan)
        return ImputationData(Y, mask, self.contexts, self.actions, self.features, self.control, self.truth)

    def permuted(self, ctx_perm: Sequence[int], act_perm: Sequence[int]) -> "ImputationData":
        """The same data with contexts and actions reordered (labels travel with their rows)."""
        cp, ap = np.asarray(ctx_perm), np.asarray(act_perm)
        tr = None if self.truth is None else self.truth[cp][:, ap]
        return ImputationData(self.Y[cp][:, ap], self.mask[cp][:, ap], [self.contexts[i] for i in cp],
                              [self.actions[j] for j in ap], self.features, self.control, tr)

    def observed_fraction(self) -> float:
        return float(self.mask.mean())


def validate(d: ImputationData) -> None:
    """Raise ``ValueError`` with a clear message on inconsistent shapes, labels or values."""
    if d.Y.ndim != 3:
        raise ValueError(f"Y must be (contexts, actions, features); got shape {d.Y.shape}")
    C, A, F = d.Y.shape
    if d.mask.shape != (C, A):
        raise ValueError(f"mask must have shape {(C, A)}; got {d.mask.shape}")
    for name, labels, n in (("contexts", d.contexts, C), ("actions", d.actions, A), ("features", d.features, F)):
        if len(labels) != n:
            raise ValueError(f"{len(labels)} {name} labels for axis of size {n}")
        if len(set(labels)) != n:
            raise ValueError(f"{name} labels are not unique")
    if C < 2 or A < 2 or F < 1:
        raise ValueError(f"need at least 2 contexts, 2 actions and 1 feature; got {(C, A, F)}")
    obs = d.Y[d.mask]
    if obs.size and not np.all(np.isfinite(obs)):
        bad = int((~np.isfinite(obs)).any(axis=1).sum())
        raise ValueError(f"{bad} measured pairs have non-finite features; drop or impute those features first")
    if not d.mask.any():
        raise ValueError("no measured pairs")
    if np.any(np.isfinite(d.Y[~d.mask])):
        raise ValueError("unmeasured pairs must hold NaN in Y (use ImputationData.with_mask)")
    if d.control is not None and d.control not in d.actions:
        raise ValueError(f"control action {d.control!r} is not among the actions")
    if d.truth is not None and d.truth.shape != d.Y.shape:
        raise ValueError(f"truth shape {d.truth.shape} != Y shape {d.Y.shape}")


def donor_report(d: ImputationData, min_donors: int = 1) -> pd.DataFrame:
    """Per missing pair: how many donor actions (measured in the pair's context) and donor contexts
    (where the pair's action is measured) exist, and which fallback SI would use.

    Columns: context, action, n_actions_in_context, n_contexts_with_action, fallback
    (``"none"``, ``"global_mean"`` when the context has no measurement, ``"context_mean"`` when the
    action was never measured, ``"few_donors"`` when either count is below ``min_donors``).
    """
    ca = d.mask.sum(axis=1)  # (C,) actions measured per context
    ac = d.mask.sum(axis=0)  # (A,) contexts measuring each action
    rows = []
    for c, a in zip(*np.nonzero(~d.mask)):
        fb = "none"
        if ca[c] == 0:
            fb = "global_mean"
        elif ac[a] == 0:
            fb = "context_mean"
        elif ca[c] < min_donors or ac[a] < min_donors:
            fb = "few_donors"
        rows.append((d.contexts[c], d.actions[a], int(ca[c]), int(ac[a]), fb))
    return pd.DataFrame(rows, columns=["context", "action", "n_actions_in_context", "n_contexts_with_action", "fallback"])


def from_long(df: pd.DataFrame, *, context_col: str = "context", action_col: str = "action",
              feature_cols: Sequence[str] | None = None, control: str | None = None,
              duplicates: str = "mean") -> ImputationData:
    """Build ``ImputationData`` from a long-format table, one row per measured pair (or replicate).

    feature_cols: default all columns other than ``context_col`` and ``action_col`` (must be numeric).
    duplicates: ``"mean"`` averages replicate rows of the same pair (CMAP level-5 style), ``"error"``
    refuses them.
    """
    for col in (context_col, action_col):
        if col not in df.columns:
            raise ValueError(f"column {col!r} not found; columns are {list(df.columns)[:10]}...")
    if feature_cols is None:
        feature_cols = [c for c in df.columns if c not in (context_col, action_col)]
    feature_cols = list(feature_cols)
    if not feature_cols:
        raise ValueError("no feature columns")
    missing = [c for c in feature_cols if c not in df.columns]
    if missing:
        raise ValueError(f"feature columns not found: {missing[:5]}")
    non_numeric = [c for c in feature_cols if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise ValueError(f"feature columns must be numeric: {non_numeric[:5]}")
    if df[[context_col, action_col]].isna().any().any():
        raise ValueError("context/action columns contain missing labels")
    keys = df[[context_col, action_col]].astype(str)
    dup = keys.duplicated(keep=False)
    if dup.any():
        if duplicates == "error":
            raise ValueError(f"{int(dup.sum())} rows repeat a (context, action) pair; pass duplicates='mean'")
        if duplicates != "mean":
            raise ValueError(f"duplicates must be 'mean' or 'error', got {duplicates!r}")
    work = pd.concat([keys, df[feature_cols].astype(float)], axis=1)
    agg = work.groupby([context_col, action_col], sort=True)[feature_cols].mean()
    contexts = sorted(agg.index.get_level_values(0).unique())
    actions = sorted(agg.index.get_level_values(1).unique())
    ci = {c: i for i, c in enumerate(contexts)}
    ai = {a: j for j, a in enumerate(actions)}
    C, A, F = len(contexts), len(actions), len(feature_cols)
    Y = np.full((C, A, F), np.nan)
    mask = np.zeros((C, A), dtype=bool)
    rows_c = np.array([ci[c] for c in agg.index.get_level_values(0)])
    rows_a = np.array([ai[a] for a in agg.index.get_level_values(1)])
    Y[rows_c, rows_a] = agg.to_numpy()
    mask[rows_c, rows_a] = True
    if control is not None and control not in ai:
        raise ValueError(f"control action {control!r} not found among {A} actions")
    return ImputationData(Y, mask, contexts, actions, [str(f) for f in feature_cols], control)


def read_table(path: str | Path, **kwargs) -> ImputationData:
    """Read a long-format CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet file into ``ImputationData``
    (keyword arguments go to :func:`from_long`)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        df = pd.read_parquet(path)
    elif name.endswith((".csv", ".csv.gz")):
        df = pd.read_csv(path)
    elif name.endswith((".tsv", ".tsv.gz", ".txt")):
        df = pd.read_csv(path, sep="\t")
    else:
        raise ValueError(f"unknown table format for {path} (use .csv, .tsv or .parquet)")
    return from_long(df, **kwargs)


def to_long(d: ImputationData) -> pd.DataFrame:
    """The measured pairs as a long-format table (inverse of :func:`from_long`)."""
    cs, as_ = np.nonzero(d.mask)
    df = pd.DataFrame(d.Y[cs, as_], columns=d.features)
    df.insert(0, "action", [d.actions[j] for j in as_])
    df.insert(0, "context", [d.contexts[i] for i in cs])
    return df
