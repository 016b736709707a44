"""GSI (reconstruction) against known truth across generators, feature counts and masks.

Noise-free: GSI must recover every pair SI-A or SI-C recovers, and every pair on one of its exact
paths must be exact (R^2 ~ 1); CP tensors and few features included. Noisy: bounded error against the
noise-free truth. Plus the path record, the spectral rank-deficiency check, ``min_leverage`` and the
Config default's exactness on identified noise-free data."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from workbench.causal_imputation import Config, evaluate, impute_gsi, impute_si, make_dataset, per_pair_metrics
from workbench.causal_imputation.core import _dataset
from workbench.causal_imputation.estimators import GSI_PATHS, _null_side_weights

EXACT_PATHS = ("si_a_exact", "si_c_exact", "exact_a", "exact_c", "two_sided", "two_sided_small_block")
MODELS = ("si_action", "si_context", "gsi", "cp")
MASKS = (("random", 0.3), ("block", 0.3), ("random", 0.6), ("full", 1.0))  # full: leave-one-out


def _r2(pred, true):
    return per_pair_metrics(pred, true)["r2"]


def _si_recovers(d, cs, as_, true):
    """Pairs SI-A or SI-C recovers (R^2 ~ 1) from an overdetermined fit (more training rows than
    coefficients). Where the fit is exactly determined SI can be right by the model alone, with no
    evidence in the data that GSI could use."""
    out = np.zeros(len(cs), dtype=bool)
    for over in ("actions", "contexts"):
        pred, info = impute_si(d, cs, as_, over=over)
        nd = (info["donors"] >= 0).sum(axis=1)
        rows = info["train"].sum(axis=1) * d.Y.shape[2]
        out |= (_r2(pred, true) > 0.9999) & (rows > nd + 1) & (info["fallback"] == "none")
    return out


def _case(model, F, pattern, frac, noise=0.0, seed=None):
    d = make_dataset(model, 14, 14, F, rank_action=2, rank_context=2, pattern=pattern, observed_frac=frac,
                     n_full_contexts=4, noise=noise, seed=F if seed is None else seed)
    cs, as_ = np.nonzero(d.mask) if pattern == "full" else np.nonzero(~d.mask)
    return d, cs, as_, d.truth[cs, as_]


@pytest.mark.parametrize("F", [10, 15, 30, 40])
@pytest.mark.parametrize("model", MODELS)
def test_gsi_noise_free_exact_where_identified(model, F):
    for pattern, frac in MASKS:
        d, cs, as_, true = _case(model, F, pattern, frac)
        pg, ig = impute_gsi(d, cs, as_, energy=0.99)
        rg = _r2(pg, true)
        where = f"{model} F={F} {pattern} {frac}"
        assert set(ig["path"]) <= set(GSI_PATHS), where
        # recovers whatever SI-A or SI-C recovers
        si_ok = _si_recovers(d, cs, as_, true)
        assert np.all(rg[si_ok] > 0.9999), where
        # every exact path is exact
        ex = np.isin(ig["path"], EXACT_PATHS)
        assert np.all(rg[ex] > 0.9999), where
        # the SI models and CP are identified for (almost) every pair SI-A / SI-C recover
        if model != "gsi":
            assert ex[si_ok].mean() > 0.95, where
        # the sum model, where SI-A and SI-C are both misspecified, is identified wherever the donor blocks
        # are big enough: block pattern and leave-one-out on a full tensor (the small-block search finds an
        # exact block at F = 10 and 15); the rest have too few donors or too little leverage for any exact block
        if model == "gsi" and pattern in ("block", "full"):
            assert ex.mean() > 0.5, where
            assert np.median(rg) > 0.9999, where
        # pairs not flagged as falling back are not silently zero
        assert np.all(np.abs(pg[ig["path"] != "fallback_si_a"]).sum(axis=1) > 0), where


@pytest.mark.parametrize("F", [15, 40])
@pytest.mark.parametrize("model", MODELS)
def test_gsi_noisy_bounded_error(model, F):
    noise = 0.05
    d, cs, as_, true = _case(model, F, "block", 0.3, noise=noise, seed=100 + F)
    pg, ig = impute_gsi(d, cs, as_, energy=0.99)
    rg = _r2(pg, true)
    ra = _r2(impute_si(d, cs, as_, over="actions")[0], true)
    rc = _r2(impute_si(d, cs, as_, over="contexts")[0], true)
    best = max(np.median(ra), np.median(rc))
    assert np.median(rg) > best - 0.05, (model, F, np.median(rg), best)
    if model != "gsi" or F >= 40:  # the sum model at 15 features is not identified by 10 x 10 blocks
        assert np.median(rg) > 0.9, (model, F)
        # error bounded by a small multiple of the noise on most pairs
        rmse = np.sqrt(((pg - true) ** 2).mean(axis=1))
        assert np.quantile(rmse, 0.9) < 10 * noise, (model, F)


def test_cp_block_spectrum_flags_rank_deficiency():
    # a CP tensor's feature slices span 2 dimensions, far below m r + n s - r s: the partial trace is
    # not two-valued (not clean) and keeps every direction (trivial), and the pair must not predict 0
    d = make_dataset("cp", 8, 8, 20, rank_action=2, pattern="full", control=False, seed=0)
    blocks = d.Y[None, 1:6][:, :, :5]  # (1, 5, 5, F), target column 0
    w, ok, clean, trivial = _null_side_weights(blocks, 1, None, 1.0, 1e-6)
    assert not clean[0] and trivial[0]
    cs, as_ = np.array([0]), np.array([0])
    pred, info = impute_gsi(d, cs, as_)
    assert info["path"][0] in EXACT_PATHS
    assert _r2(pred, d.truth[cs, as_])[0] > 0.9999


def test_sum_model_block_spectrum_is_two_valued():
    # identified sum-model block (F = 60 > m r + n s - r s = 32): eigenvalues 0 or top, nontrivial
    d = make_dataset("gsi", 10, 10, 60, rank_action=2, rank_context=2, pattern="full", control=False, seed=1)
    blocks = d.Y[None, 1:9][:, :, :8]  # (1, 8, 8, F)
    w, ok, clean, trivial = _null_side_weights(blocks, 1, None, 1.0, 1e-6)
    assert ok[0] and clean[0] and not trivial[0]


def test_min_leverage_changes_behaviour():
    d = make_dataset("gsi", 20, 20, 30, rank_action=2, rank_context=2, noise=0.1, pattern="random",
                     observed_frac=0.5, seed=21)
    cs, as_ = np.nonzero(~d.mask)
    p0, i0 = impute_gsi(d, cs, as_, energy=0.99, min_leverage=0.0)
    p1, i1 = impute_gsi(d, cs, as_, energy=0.99, min_leverage=0.5)
    n0 = (i0["path"] == "fallback_si_a").sum()
    n1 = (i1["path"] == "fallback_si_a").sum()
    assert n1 > n0
    assert not np.allclose(p0, p1)
    # and through Config / evaluate
    cfg0, cfg1 = Config(gsi_min_leverage=0.0), Config(gsi_min_leverage=0.5)
    e0 = evaluate(d, cfg0, names=["gsi"])
    e1 = evaluate(d, cfg1, names=["gsi"])
    assert e1["summary"]["gsi"]["n_fallback"] > e0["summary"]["gsi"]["n_fallback"]
    with pytest.raises(ValueError, match="min_leverage"):
        impute_gsi(d, cs[:2], as_[:2], min_leverage=1.0)


def test_config_default_exact_on_identified_noise_free_data():
    # 50% random mask, Config defaults (gsi_energy 0.99): every pair GSI calls exact is exact, and the
    # energy cut loses nothing against energy 1.0 (an exact rank gap sets the rank, not the energy)
    for model in MODELS:
        out = {}
        for energy in (Config().gsi_energy, 1.0):
            cfg = Config(n_contexts=20, n_actions=20, n_features=30, noise=0.0, pattern="random", observed_frac=0.5,
                         gsi_energy=energy)
            d = _dataset(cfg, model)
            ev = evaluate(d, cfg, names=["gsi"])
            rg = ev["per_pair"]["gsi"]["r2"]
            ex = np.isin(ev["info"]["gsi"]["path"], EXACT_PATHS)
            assert np.all(rg[ex] > 0.9999), (model, energy)
            out[energy] = (rg > 0.99).mean()
        assert out[Config().gsi_energy] >= out[1.0], model
        if model != "gsi":
            assert out[Config().gsi_energy] > 0.95, model


def test_si_train_resid_matches_sklearn_and_naive():
    d = make_dataset("si_action", 12, 10, 6, rank_action=2, noise=0.3, pattern="random", observed_frac=0.7, seed=9)
    cs, as_ = np.nonzero(~d.mask)
    pv, iv = impute_si(d, cs, as_, over="actions")
    pn, inn = impute_si(d, cs, as_, over="actions", vectorised=False)
    assert np.allclose(iv["train_resid"], inn["train_resid"], equal_nan=True, atol=1e-8)
    checked = 0
    for p in range(len(cs)):
        if iv["fallback"][p] != "none":
            assert np.isnan(iv["train_resid"][p])
            continue
        J = iv["donors"][p][iv["donors"][p] >= 0]
        T = np.nonzero(iv["train"][p])[0]
        X = d.Y[np.ix_(T, J)].transpose(0, 2, 1).reshape(-1, len(J))
        y = d.Y[T, as_[p]].reshape(-1)
        if np.linalg.matrix_rank(X) < X.shape[1]:
            continue
        lr = LinearRegression().fit(X, y)
        expect = np.linalg.norm(y - lr.predict(X)) / np.linalg.norm(y)
        assert np.isclose(iv["train_resid"][p], expect, rtol=1e-6, atol=1e-9)
        checked += 1
    assert checked >= 5


def test_run_reports_gsi_paths():
    from workbench.causal_imputation import run

    cfg = Config(models=("cp",), n_contexts=12, n_actions=12, n_features=20, noise=0.0, sweep_fracs=(),
                 estimators=("si_a", "gsi"))
    r = run(cfg, progress=False)
    rows = [p for p in r["gsi_paths"] if p["model"] == "cp"]
    n_pairs = [t["n_pairs"] for t in r["table"] if t["model"] == "cp" and t["estimator"] == "gsi"][0]
    assert sum(p["count"] for p in rows) == n_pairs
    assert {p["path"] for p in rows} <= set(GSI_PATHS)
    assert r["summary"]["cp"]["gsi"]["r2_median"] > 0.9999
