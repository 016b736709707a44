"""Tests for workbench.causal_imputation: known answers on noise-free latent factor data, naive vs
vectorised agreement, donor selection and fallbacks on hand-made masks, permutation invariance,
loaders, metrics against scikit-learn."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from workbench.causal_imputation import (Config, ImputationData, evaluate, from_long, impute_fixed_effect,
                                         impute_gsi, impute_mean_over_actions, impute_mean_over_contexts,
                                         impute_parafac, impute_si, impute_two_way, make_dataset,
                                         per_pair_metrics, read_table, run, to_long)
from workbench.causal_imputation.donors import label_ranks, select_donors, select_donors_naive


def _r2(pred, true):
    return per_pair_metrics(pred, true)["r2"]


def _heldout(d):
    cs, as_ = np.nonzero(~d.mask)
    return cs, as_, d.truth[cs, as_]


def _data(Y, mask, control=None, truth=None):
    C, A, F = Y.shape
    Y = np.where(mask[:, :, None], Y, np.nan)
    return ImputationData(Y, mask, [f"c{i}" for i in range(C)], [f"a{j}" for j in range(A)],
                          [f"f{k}" for k in range(F)], control, truth)


# ------------------------------------------------------------------ known answers under each model
@pytest.mark.parametrize("pattern,frac", [("block", 0.3), ("random", 0.5)])
def test_si_a_recovers_its_model(pattern, frac):
    d = make_dataset("si_action", 25, 25, 30, rank_action=3, pattern=pattern, observed_frac=frac, seed=3)
    cs, as_, true = _heldout(d)
    pred, info = impute_si(d, cs, as_, over="actions")
    ok = info["fallback"] == "none"
    assert ok.mean() > 0.9
    assert np.min(_r2(pred[ok], true[ok])) > 0.99


@pytest.mark.parametrize("pattern,frac", [("block", 0.3), ("random", 0.5)])
def test_si_c_recovers_its_model(pattern, frac):
    d = make_dataset("si_context", 25, 25, 30, rank_context=3, pattern=pattern, observed_frac=frac, seed=4)
    cs, as_, true = _heldout(d)
    pred, info = impute_si(d, cs, as_, over="contexts")
    ok = info["fallback"] == "none"
    assert ok.mean() > 0.9
    assert np.min(_r2(pred[ok], true[ok])) > 0.99


@pytest.mark.parametrize("model", ["gsi", "si_action", "si_context"])
def test_gsi_recovers_sum_model_and_both_si_models(model):
    d = make_dataset(model, 24, 24, 40, rank_action=2, rank_context=2, pattern="block", observed_frac=0.3,
                     n_full_contexts=6, seed=5)
    cs, as_, true = _heldout(d)
    pred, info = impute_gsi(d, cs, as_, energy=1.0)
    own = info["fallback"] == "none"
    assert own.mean() > 0.95  # the rest have near-degenerate donor blocks (weights capped by min_leverage)
    assert np.min(_r2(pred[own], true[own])) > 0.99


def test_gsi_recovers_where_si_a_and_si_c_fail():
    d = make_dataset("gsi", 24, 24, 40, rank_action=2, rank_context=2, pattern="block", observed_frac=0.3,
                     n_full_contexts=6, seed=6)
    cs, as_, true = _heldout(d)
    g = np.median(_r2(impute_gsi(d, cs, as_, energy=1.0)[0], true))
    a = np.median(_r2(impute_si(d, cs, as_, over="actions")[0], true))
    c = np.median(_r2(impute_si(d, cs, as_, over="contexts")[0], true))
    assert g > 0.99
    assert a < 0.7 and c < 0.7


def test_gsi_with_known_ranks_under_noise_beats_si():
    d = make_dataset("gsi", 24, 24, 40, rank_action=2, rank_context=2, noise=0.05, pattern="block",
                     observed_frac=0.3, n_full_contexts=6, seed=7)
    cs, as_, true = _heldout(d)
    g = np.median(_r2(impute_gsi(d, cs, as_, ranks=(2, 2))[0], true))
    a = np.median(_r2(impute_si(d, cs, as_, over="actions")[0], true))
    assert g > 0.95 and g > a + 0.3


def test_baselines_recover_their_models():
    rng = np.random.default_rng(0)
    C, A, F = 8, 7, 5
    m = rng.standard_normal((C, 1, F))
    n = rng.standard_normal((1, A, F))
    mask = rng.random((C, A)) < 0.6
    mask[:, 0] = True  # control everywhere
    mask[0, 1] = mask[1, 2] = False
    for Y, fn, kw in [(np.broadcast_to(m, (C, A, F)), impute_mean_over_actions, {}),
                      (np.broadcast_to(n, (C, A, F)), impute_mean_over_contexts, {}),
                      (m + n, impute_fixed_effect, {})]:
        d = _data(np.array(Y), mask, control="a0", truth=np.array(Y))
        cs, as_, true = _heldout(d)
        pred, info = fn(d, cs, as_, **kw)
        assert np.allclose(pred, true), fn.__name__


def test_two_way_average_by_hand():
    Y = np.arange(2 * 3 * 1, dtype=float).reshape(2, 3, 1)
    mask = np.array([[1, 1, 0], [1, 0, 1]], dtype=bool)
    d = _data(Y, mask)
    pred, _ = impute_two_way(d, np.array([0]), np.array([2]))
    ctx_mean = (Y[0, 0] + Y[0, 1]) / 2
    act_mean = Y[1, 2]
    assert np.allclose(pred[0], 0.5 * ctx_mean + 0.5 * act_mean)
    pred, _ = impute_two_way(d, np.array([0]), np.array([2]), mode="additive")
    assert np.allclose(pred[0], ctx_mean + act_mean - Y[mask].mean(axis=0))
    with pytest.raises(ValueError, match="two_way mode"):
        impute_two_way(d, np.array([0]), np.array([2]), mode="sum")


def test_parafac_recovers_cp_tensor():
    d = make_dataset("cp", 15, 15, 12, rank_action=2, pattern="random", observed_frac=0.6, control=False, seed=8)
    cs, as_, true = _heldout(d)
    pred, _ = impute_parafac(d, cs, as_, rank=2, n_iter_max=500, seed=0)
    assert np.median(_r2(pred, true)) > 0.99


# ------------------------------------------------------------------ independent references
def test_si_regression_matches_sklearn_on_stacked_design():
    d = make_dataset("si_action", 12, 10, 6, rank_action=2, noise=0.3, pattern="random", observed_frac=0.7, seed=9)
    cs, as_ = np.nonzero(~d.mask)
    pred, info = impute_si(d, cs[:5], as_[:5], over="actions")
    checked = 0
    for p in range(5):
        if info["fallback"][p] != "none":
            continue
        J = info["donors"][p][info["donors"][p] >= 0]
        T = np.nonzero(info["train"][p])[0]
        X = d.Y[np.ix_(T, J)].transpose(0, 2, 1).reshape(-1, len(J))
        y = d.Y[T, as_[p]].reshape(-1)
        lr = LinearRegression().fit(X, y)
        if np.linalg.matrix_rank(X) == X.shape[1]:  # unique least-squares solution
            assert np.allclose(info["coef"][p, :len(J)], lr.coef_, atol=1e-6)
            assert np.allclose(pred[p], lr.predict(d.Y[cs[p], J].T), atol=1e-6)
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("over", ["actions", "contexts"])
@pytest.mark.parametrize("energy", [1.0, 0.9])
@pytest.mark.parametrize("pattern", ["random", "block"])
def test_vectorised_equals_naive(over, energy, pattern):
    d = make_dataset("gsi", 20, 18, 15, noise=0.1, pattern=pattern, observed_frac=0.35, seed=10)
    cs, as_ = np.nonzero(~d.mask)
    pv, iv = impute_si(d, cs, as_, over=over, energy=energy, num_donors=3)
    pn, inn = impute_si(d, cs, as_, over=over, energy=energy, num_donors=3, vectorised=False)
    assert np.array_equal(iv["donors"], inn["donors"])
    assert np.array_equal(iv["train"], inn["train"])
    assert np.array_equal(iv["fallback"], inn["fallback"])
    assert np.allclose(pv, pn, atol=1e-6)


def test_hsvt_keeps_energy_fraction_by_hand():
    rng = np.random.default_rng(1)
    C, A, F = 6, 4, 10
    Y = rng.standard_normal((C, A, F))
    mask = np.ones((C, A), dtype=bool)
    mask[0, 3] = False
    d = _data(Y, mask)
    pred, info = impute_si(d, np.array([0]), np.array([3]), over="actions", energy=0.5, num_donors=None)
    J = info["donors"][0][info["donors"][0] >= 0]
    T = np.nonzero(info["train"][0])[0]
    X = Y[np.ix_(T, J)].transpose(0, 2, 1).reshape(-1, len(J))
    y = Y[T, 3].reshape(-1)
    Xc, yc = X - X.mean(0), y - y.mean()
    u, s, vt = np.linalg.svd(Xc, full_matrices=False)
    k = int(np.argmax(np.cumsum(s**2) / np.sum(s**2) > 0.5)) + 1
    w = vt[:k].T @ (u[:, :k].T @ yc / s[:k])
    expect = Y[0, J].T @ w + y.mean() - X.mean(0) @ w
    assert np.allclose(pred[0], expect)


# ------------------------------------------------------------------ donors and fallbacks, hand-made masks
def test_donor_selection_hand_made_mask():
    # contexts c0..c4, actions a0..a3; target (c0, a3)
    mask = np.array([
        [1, 1, 1, 0],  # c0: target context, candidates a0, a1, a2
        [1, 1, 0, 1],  # c1
        [1, 1, 0, 1],  # c2
        [0, 1, 1, 1],  # c3
        [1, 0, 0, 1],  # c4
    ], dtype=bool)
    ranks = label_ranks(["a0", "a1", "a2", "a3"])
    # overlaps with contexts of a3 {c1..c4}: a0 -> {1,2,4}, a1 -> {1,2,3}, a2 -> {3}. Tie a0/a1 -> a0 (label).
    donors, ctx = select_donors_naive(mask, 0, 3, num_donors=1, ranks=ranks)
    assert donors == [0] and ctx == [1, 2, 4]
    # with more donors wanted it continues: a1 shrinks {1,2,4} -> {1,2}; then a2 has no overlap -> stop
    donors, ctx = select_donors_naive(mask, 0, 3, num_donors=5, ranks=ranks)
    assert donors == [0, 1] and ctx == [1, 2]
    # reversing the label order flips the tie
    donors, _ = select_donors_naive(mask, 0, 3, num_donors=1, ranks=label_ranks(["z", "b", "c", "d"]))
    assert donors == [1]
    D, T = select_donors(mask, np.array([0, 0]), np.array([3, 3]), 5, ranks)
    assert D[0].tolist() == [0, 1] and np.nonzero(T[0])[0].tolist() == [1, 2]
    # max_donors caps the search
    donors, ctx = select_donors_naive(mask, 0, 3, num_donors=5, ranks=ranks, max_donors=1)
    assert donors == [0] and ctx == [1, 2, 4]


def test_si_fallbacks_hand_made():
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((4, 4, 3))
    mask = np.array([
        [1, 1, 0, 0],  # (0, 2): a2 measured only in c3 which shares no action with c0's actions? see below
        [1, 1, 0, 0],
        [0, 0, 0, 0],  # c2: nothing measured -> global mean
        [0, 0, 1, 0],  # a3 never measured -> context mean
    ], dtype=bool)
    d = _data(Y, mask)
    cs, as_ = np.array([2, 0, 0, 1]), np.array([0, 3, 2, 3])
    pred, info = impute_si(d, cs, as_, over="actions")
    fb = info["fallback"].tolist()
    glob = Y[mask].mean(axis=0)
    assert fb[0] == "global_mean" and np.allclose(pred[0], glob)
    assert fb[1] == "context_mean" and np.allclose(pred[1], Y[0, [0, 1]].mean(axis=0))
    # (c0, a2): donors a0, a1 are measured in c0 but never in c3 (the only context with a2) -> no donor
    # chosen, the intercept alone = mean of a2 over its contexts
    assert fb[2] == "intercept_only" and np.allclose(pred[2], Y[3, 2].mean())
    assert fb[3] == "context_mean"
    # the naive loop takes the same fallbacks
    pn, inn = impute_si(d, cs, as_, over="actions", vectorised=False)
    assert inn["fallback"].tolist() == fb and np.allclose(pn, pred)


def test_gsi_falls_back_to_si_a_when_blocks_too_small():
    d = make_dataset("gsi", 10, 10, 8, rank_action=2, rank_context=2, pattern="random", observed_frac=0.25, seed=11)
    cs, as_ = np.nonzero(~d.mask)
    pred, info = impute_gsi(d, cs, as_, energy=1.0)
    fell = np.char.startswith(info["fallback"].astype(str), "si_a")
    assert fell.any()
    sp, _ = impute_si(d, cs[fell], as_[fell], over="actions")
    assert np.allclose(pred[fell], sp)


def test_loo_never_uses_the_target():
    d = make_dataset("si_action", 10, 10, 8, pattern="full", seed=12)
    cs, as_ = np.nonzero(d.mask)
    pred, _ = impute_si(d, cs, as_, over="actions")
    assert np.median(_r2(pred, d.Y[cs, as_])) > 0.99
    Y2 = d.Y.copy()
    Y2[3, 4] += 100.0
    d2 = ImputationData(Y2, d.mask, d.contexts, d.actions, d.features, d.control)
    p = int(np.nonzero((cs == 3) & (as_ == 4))[0][0])
    for fn in (lambda dd: impute_si(dd, cs[[p]], as_[[p]], over="actions")[0],
               lambda dd: impute_si(dd, cs[[p]], as_[[p]], over="contexts")[0],
               lambda dd: impute_gsi(dd, cs[[p]], as_[[p]])[0],
               lambda dd: impute_mean_over_actions(dd, cs[[p]], as_[[p]])[0],
               lambda dd: impute_fixed_effect(dd, cs[[p]], as_[[p]])[0]):
        assert np.allclose(fn(d), fn(d2))


# ------------------------------------------------------------------ permutation invariance
def test_results_invariant_under_permutation():
    d = make_dataset("gsi", 16, 14, 12, noise=0.1, pattern="block", observed_frac=0.35, n_full_contexts=5, seed=13)
    rng = np.random.default_rng(0)
    cp, ap = rng.permutation(16), rng.permutation(14)
    dp = d.permuted(cp, ap)
    cfg = Config(parafac_iters=5)
    names = ["si_a", "si_c", "gsi", "mean_over_actions", "mean_over_contexts", "two_way", "fixed_effect"]
    e1 = evaluate(d, cfg, names=names)
    e2 = evaluate(dp, cfg, names=names)
    key1 = {(d.contexts[c], d.actions[a]): p for p, (c, a) in enumerate(zip(e1["cs"], e1["as"]))}
    order = [key1[(dp.contexts[c], dp.actions[a])] for c, a in zip(e2["cs"], e2["as"])]
    for n in names:
        assert np.allclose(e2["pred"][n], e1["pred"][n][order], atol=1e-8), n
        assert np.array_equal(e2["info"][n]["fallback"], e1["info"][n]["fallback"][order]), n


# ------------------------------------------------------------------ data model and loaders
def test_long_roundtrip_csv_parquet(tmp_path):
    d = make_dataset("si_action", 5, 4, 3, pattern="random", observed_frac=0.6, seed=14)
    df = to_long(d)
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet", index=False)
    for path in (tmp_path / "t.csv", tmp_path / "t.parquet"):
        e = read_table(path, control="control")
        ci = [e.contexts.index(c) for c in d.contexts]
        ai = [e.actions.index(a) for a in d.actions]
        assert np.array_equal(e.mask[np.ix_(ci, ai)], d.mask)
        assert np.allclose(np.nan_to_num(e.Y[np.ix_(ci, ai)]), np.nan_to_num(d.Y))


def test_from_long_duplicates_and_errors():
    df = pd.DataFrame({"context": ["x", "x", "y", "y"], "action": ["p", "p", "p", "q"], "g1": [1.0, 3.0, 5.0, 7.0]})
    d = from_long(df)
    assert d.Y[0, 0, 0] == 2.0 and not d.mask[0, 1]
    with pytest.raises(ValueError, match="repeat"):
        from_long(df, duplicates="error")
    with pytest.raises(ValueError, match="not found"):
        from_long(df, context_col="cell")
    with pytest.raises(ValueError, match="numeric"):
        from_long(df.assign(g2=["a", "b", "c", "d"]))
    with pytest.raises(ValueError, match="non-finite"):
        from_long(df.assign(g1=[1.0, np.nan, np.nan, 2.0]))
    with pytest.raises(ValueError, match="control"):
        from_long(df, control="dmso")


def test_data_validation_errors():
    Y = np.zeros((3, 3, 2))
    with pytest.raises(ValueError, match="mask must have shape"):
        ImputationData(Y, np.ones((3, 2), bool), list("abc"), list("abc"), list("ab"))
    with pytest.raises(ValueError, match="unique"):
        ImputationData(Y, np.ones((3, 3), bool), list("aac"), list("abc"), list("ab"))
    with pytest.raises(ValueError, match="NaN"):
        ImputationData(Y, np.eye(3, dtype=bool), list("abc"), list("abc"), list("ab"))
    with pytest.raises(ValueError, match="heldout"):
        evaluate(ImputationData(Y, np.ones((3, 3), bool), list("abc"), list("abc"), list("ab")), Config(),
                 mode="heldout")


# ------------------------------------------------------------------ metrics
def test_metrics_against_sklearn_and_by_hand():
    rng = np.random.default_rng(3)
    true, pred = rng.standard_normal((4, 9)), rng.standard_normal((4, 9))
    ctrl = rng.standard_normal((4, 9))
    m = per_pair_metrics(pred, true, ctrl)
    assert np.allclose(m["r2"], [r2_score(t, p) for t, p in zip(true, pred)])
    dp, dt = pred - ctrl, true - ctrl
    assert np.allclose(m["cosine"], (dp * dt).sum(1) / np.linalg.norm(dp, axis=1) / np.linalg.norm(dt, axis=1))
    assert np.allclose(m["rmse"], np.sqrt(((pred - true) ** 2).mean(1)))


# ------------------------------------------------------------------ run()
def test_run_smoke_and_claim():
    cfg = Config(n_contexts=16, n_actions=16, n_features=30, n_full_contexts=5, noise=0.0, gsi_energy=1.0,
                 sweep_fracs=(0.3,), parafac_iters=20)
    r = run(cfg, progress=False)
    s = r["summary"]
    assert set(s) >= {"si_action", "si_context", "gsi", "sweep_r2_median", "claim"}
    assert s["si_action"]["si_a"]["r2_median"] > 0.99
    assert s["si_context"]["si_c"]["r2_median"] > 0.99
    assert s["gsi"]["gsi"]["r2_median"] > 0.99
    assert s["claim"]["gsi_minus_best_si_r2_on_gsi_model"] > 0.3
    assert r["explorer"]["pairs"] and len(r["explorer"]["mask"]) == 16


def test_run_on_user_table_uses_loo():
    d = make_dataset("si_action", 8, 8, 6, pattern="full", noise=0.0, seed=15)
    user = from_long(to_long(d), control="control")
    r = run(Config(estimators=("si_a", "mean_over_actions", "parafac")), data=user, progress=False)
    assert "parafac" not in r["summary"]["user"]
    assert r["summary"]["user"]["si_a"]["r2_median"] > 0.99
