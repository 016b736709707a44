"""Run estimators on data and score them: ``run(cfg) -> dict`` for the notebook, widget and tests."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.seeding import derive_seed

from . import estimators as est
from .config import Config
from .data import ImputationData
from .generators import make_dataset
from .metrics import per_pair_metrics, summarise


def impute(data: ImputationData, cs, as_, name: str, cfg: Config) -> tuple[np.ndarray, dict]:
    """Predict (P, F) outcomes of target pairs with estimator ``name`` configured by ``cfg``."""
    si_kw = dict(num_donors=cfg.num_donors, energy=cfg.si_energy, rcond=cfg.rcond)
    if name == "si_a":
        return est.impute_si(data, cs, as_, over="actions", **si_kw)
    if name == "si_c":
        return est.impute_si(data, cs, as_, over="contexts", **si_kw)
    if name == "gsi":
        return est.impute_gsi(data, cs, as_, num_donors=cfg.gsi_num_donors,
                              max_donor_actions=cfg.gsi_max_donor_actions,
                              max_donor_contexts=cfg.gsi_max_donor_contexts, energy=cfg.gsi_energy,
                              rcond=cfg.rcond, ranks=cfg.gsi_ranks, min_leverage=cfg.gsi_min_leverage,
                              tol=cfg.gsi_tol, si_kwargs=si_kw)
    if name == "mean_over_actions":
        return est.impute_mean_over_actions(data, cs, as_)
    if name == "mean_over_contexts":
        return est.impute_mean_over_contexts(data, cs, as_)
    if name == "two_way":
        return est.impute_two_way(data, cs, as_, mode=cfg.two_way)
    if name == "fixed_effect":
        return est.impute_fixed_effect(data, cs, as_)
    if name == "parafac":
        return est.impute_parafac(data, cs, as_, rank=cfg.parafac_rank, n_iter_max=cfg.parafac_iters,
                                  seed=derive_seed(cfg.seed, "parafac"))
    raise ValueError(f"unknown estimator {name!r}; choose from {est.ESTIMATORS}")


def targets(data: ImputationData, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cs, as_, true (P, F)) for ``heldout`` (unmeasured pairs, needs truth) or ``loo`` (measured pairs)."""
    if mode == "heldout":
        if data.truth is None:
            raise ValueError("heldout evaluation needs the true tensor; use eval_mode='loo' on real data")
        cs, as_ = np.nonzero(~data.mask)
        return cs, as_, data.truth[cs, as_]
    if mode == "loo":
        cs, as_ = np.nonzero(data.mask)
        return cs, as_, data.Y[cs, as_]
    raise ValueError(f"eval_mode must be 'heldout' or 'loo', got {mode!r}")


def _control_outcomes(data: ImputationData, cs: np.ndarray) -> np.ndarray | None:
    k = data.control_index
    if k is None:
        return None
    if data.truth is not None:
        return data.truth[cs, k]
    return np.where(data.mask[cs, k][:, None], data.Y[cs, k], np.nan)


def evaluate(data: ImputationData, cfg: Config, names=None, mode: str | None = None, progress: bool = False) -> dict:
    """Run estimators on ``data`` and score them per pair.

    Returns {"cs", "as", "true", "pred": {name: (P, F)}, "info": {name: info}, "per_pair": {name: metrics},
    "summary": {name: aggregate metrics + fallback counts}}. Estimators that cannot run in this mode
    (PARAFAC under leave-one-out) are skipped and listed under "skipped" with the reason.
    """
    names = list(names or cfg.estimators)
    mode = mode or cfg.eval_mode
    cs, as_, true = targets(data, mode)
    if len(cs) == 0:
        raise ValueError("no target pairs to evaluate")
    ctrl = _control_outcomes(data, cs)
    out = {"cs": cs, "as": as_, "true": true, "pred": {}, "info": {}, "per_pair": {}, "summary": {}, "skipped": {}}
    if "mean_over_actions" not in names:
        names_run = names + ["mean_over_actions"]  # reference for relative MSE
    else:
        names_run = names
    for name in tqdm(names_run, disable=not progress, desc="estimators", leave=False):
        if name == "parafac" and mode == "loo":
            out["skipped"][name] = "PARAFAC is fitted once on the measured pairs; no leave-one-out refits"
            continue
        pred, info = impute(data, cs, as_, name, cfg)
        out["pred"][name], out["info"][name] = pred, info
        out["per_pair"][name] = per_pair_metrics(pred, true, ctrl)
    base = out["per_pair"]["mean_over_actions"]["mse"]
    for name in names:
        if name not in out["per_pair"]:
            continue
        s = summarise(out["per_pair"][name], base)
        fb = out["info"][name]["fallback"]
        s["n_fallback"] = int((fb != "none").sum())
        out["summary"][name] = s
    return out


def per_pair_table(ev: dict, data: ImputationData) -> pd.DataFrame:
    """Long table: one row per (pair, estimator) with r2, cosine, rmse, mse and the fallback used."""
    rows = []
    for name, m in ev["per_pair"].items():
        df = pd.DataFrame({k: v for k, v in m.items()})
        df.insert(0, "estimator", name)
        df.insert(0, "action", [data.actions[j] for j in ev["as"]])
        df.insert(0, "context", [data.contexts[i] for i in ev["cs"]])
        df["fallback"] = ev["info"][name]["fallback"]
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def _path_counts(ev: dict, **keys) -> list[dict]:
    """Rows {**keys, path, count}: how many pairs took each GSI path (none when GSI did not run)."""
    if "gsi" not in ev["info"]:
        return []
    u, n = np.unique(ev["info"]["gsi"]["path"], return_counts=True)
    return [{**keys, "path": str(p), "count": int(c)} for p, c in zip(u, n)]


def _dataset(cfg: Config, model: str, observed_frac: float | None = None, pattern: str | None = None) -> ImputationData:
    return make_dataset(model, cfg.n_contexts, cfg.n_actions, cfg.n_features, rank_action=cfg.rank_action,
                        rank_context=cfg.rank_context, noise=cfg.noise, pattern=pattern or cfg.pattern,
                        observed_frac=cfg.observed_frac if observed_frac is None else observed_frac,
                        n_full_contexts=cfg.n_full_contexts, seed=derive_seed(cfg.seed, "data", model))


def explorer_data(data: ImputationData, ev: dict, names=("si_a", "si_c", "gsi"), decimals: int = 4) -> dict:
    """Plain data for the imputation explorer widget: mask, labels, per-pair predictions / truth,
    donors and weights, and per-estimator R^2 heatmaps (C, A) with NaN on measured pairs."""
    C, A = data.mask.shape
    names = [n for n in names if n in ev["pred"]]
    heat = {}
    for n in ev["per_pair"]:
        h = np.full((C, A), np.nan)
        h[ev["cs"], ev["as"]] = ev["per_pair"][n]["r2"]
        heat[n] = np.round(h, decimals)
    pairs = []
    for p, (c, a) in enumerate(zip(ev["cs"].tolist(), ev["as"].tolist())):
        item = {"context": c, "action": a, "true": np.round(ev["true"][p], decimals).tolist(), "pred": {}, "donors": {}}
        for n in names:
            info = ev["info"][n]
            item["pred"][n] = np.round(ev["pred"][n][p], decimals).tolist()
            d = {"fallback": str(info["fallback"][p])}
            if "donors" in info and info["donors"].size:
                k = info["donors"][p] >= 0
                lab = data.contexts if n == "si_c" else data.actions
                d["donors"] = [lab[j] for j in info["donors"][p][k]]
                d["weights"] = np.round(info["coef"][p][k], decimals).tolist()
            if "donor_contexts" in info:
                k = info["donor_contexts"][p] >= 0
                d["donor_contexts"] = [data.contexts[i] for i in info["donor_contexts"][p][k]]
                d["context_weights"] = np.round(info["context_coef"][p][k], decimals).tolist()
            item["donors"][n] = d
        pairs.append(item)
    return {"contexts": data.contexts, "actions": data.actions, "features": data.features,
            "mask": data.mask.astype(int).tolist(), "r2_heatmaps": {k: v.tolist() for k, v in heat.items()},
            "pairs": pairs, "estimators": names}


def run(cfg: Config | None = None, data: ImputationData | None = None, progress: bool = True) -> dict:
    """Main entry point.

    Without ``data``: generate one dataset per ``cfg.models``, score every estimator on it
    (``cfg.eval_mode``), and sweep the observed fraction on the ``gsi`` model. With ``data`` (a user
    table through :func:`.data.read_table`): score the estimators on it (``loo`` unless it carries truth).

    Returns {"table": rows, "sweep": rows, "gsi_paths": rows (model, [pattern, observed_frac,] path, count:
    how many pairs took each GSI path), "explorer": widget data, "summary": printed metrics}.
    """
    cfg = cfg or Config()
    table, sweep, summary, paths = [], [], {}, []
    explorer = None
    datasets = {"user": data} if data is not None else None
    if datasets is None:
        datasets = {m: _dataset(cfg, m) for m in cfg.models}
    for model, d in tqdm(datasets.items(), disable=not progress, desc="datasets"):
        mode = cfg.eval_mode if (data is None or d.truth is not None) else "loo"
        ev = evaluate(d, cfg, mode=mode)
        summary[model] = {}
        for name, s in ev["summary"].items():
            table.append({"model": model, "estimator": name, **s})
            summary[model][name] = {k: s[k] for k in ("r2_median", "relative_mse") if k in s}
            if "cosine_mean" in s:
                summary[model][name]["cosine_mean"] = s["cosine_mean"]
        paths.extend(_path_counts(ev, model=model))
        if model == cfg.explorer_model or data is not None:
            explorer = explorer_data(d, ev)
    if data is None and cfg.sweep_fracs:
        sweep_model = "gsi"
        grid = [(pat, frac) for pat in cfg.sweep_patterns for frac in cfg.sweep_fracs]
        for pat, frac in tqdm(grid, disable=not progress, desc="sparsity sweep"):
            d = _dataset(cfg, sweep_model, observed_frac=frac, pattern=pat)
            ev = evaluate(d, cfg, names=list(cfg.sweep_estimators))
            paths.extend(_path_counts(ev, model=sweep_model, pattern=pat, observed_frac=frac))
            for name, s in ev["summary"].items():
                sweep.append({"model": sweep_model, "pattern": pat, "observed_frac": frac,
                              "observed_total": round(d.observed_fraction(), 4), "estimator": name, **s})
    if sweep:
        summary["sweep_r2_median"] = {f"{r['pattern']}.{r['estimator']}@{r['observed_frac']}": r["r2_median"]
                                      for r in sweep}
    if data is None and "gsi" in summary and {"gsi", "si_a", "si_c"} <= set(summary["gsi"]):
        g = summary["gsi"]
        summary["claim"] = {
            "gsi_minus_best_si_r2_on_gsi_model": g["gsi"]["r2_median"] - max(g["si_a"]["r2_median"], g["si_c"]["r2_median"]),
        }
    return {"config": dataclasses.asdict(cfg), "table": table, "sweep": sweep, "gsi_paths": paths, "explorer": explorer,
            "summary": summary}
