"""Tests for workbench.del_gflownet: blocks, reactions, labels/split, environments, reward, training,
baselines and metrics. Known answers: hand-checked reaction products, exact enumeration of toy
libraries, closed-form rewards."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from workbench.del_gflownet import baselines as bl
from workbench.del_gflownet.blocks import (BUILTIN_CSV, builtin_blocks, canonical, generate_builtin_blocks,
                                           load_blocks_csv)
from workbench.del_gflownet.core import torch_threads
from workbench.del_gflownet.env import FlatDELEnv, HierarchicalDELEnv, cluster_blocks
from workbench.del_gflownet.metrics import count_modes, jaccard_distance_matrix, library_set_metrics
from workbench.del_gflownet.models import (PPIModel, evaluate, murcko_scaffold, qeppi_score, rule_of_four_count,
                                           scaffold_split, to_mol)
from workbench.del_gflownet.reactions import LibraryEnumerator
from workbench.del_gflownet.reward import LibraryReward, ModelScorer, TableScorer
from workbench.del_gflownet.train import (all_libraries, build_gflownet, distribution_distances,
                                          exact_terminal_distribution, sample_libraries, train_gflownet)


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


# ---- building blocks ---------------------------------------------------------------------------
def test_builtin_blocks_match_generator_and_are_valid():
    b = builtin_blocks()
    assert b.n_cycles == 3 and min(b.sizes) >= 150 and not b.invalid
    rows = generate_builtin_blocks()
    assert [(c, i, s) for c, i, s in rows] == [(c + 1, b.ids[c][k], b.smiles[c][k])
                                               for c in range(3) for k in range(b.sizes[c])]
    assert BUILTIN_CSV.exists()
    for c in range(3):
        assert len(set(b.smiles[c])) == b.sizes[c]


def test_csv_loader_reports_bad_rows():
    text = "cycle,id,smiles\n1,a,CCN\n1,b,not_a_smiles\n2,c,OC(=O)c1ccc(Br)cc1\n2,d,C(=O)(O)c1ccc(Br)cc1\n7,e,CC\nx,f,CC\n"
    b = load_blocks_csv(text, n_cycles=2)
    assert b.smiles == [["CCN"], ["O=C(O)c1ccc(Br)cc1"]]
    reasons = sorted(r[3] for r in b.invalid)
    assert len(reasons) == 4
    assert any("does not parse" in r for r in reasons) and any("duplicate" in r for r in reasons)
    assert any("outside" in r for r in reasons) and any("not an integer" in r for r in reasons)
    with pytest.raises(ValueError, match="smiles"):
        load_blocks_csv("cycle,id,smi\n1,a,CC\n")
    with pytest.raises(ValueError, match="no valid"):
        load_blocks_csv("cycle,smiles\n1,CC\n2,zzz\n", n_cycles=2)


# ---- reactions ---------------------------------------------------------------------------------
def test_reaction_enumeration_known_products_and_failures():
    enum = LibraryEnumerator([["NCC(=O)O", "C1CCNCC1"], ["O=C(O)c1ccc(Br)cc1", "c1ccccc1"],
                              ["OB(O)c1ccccc1", "OB(O)c1ccc(F)cc1"]])
    out = enum.enumerate([[0, 1], [0, 1], [0, 1]])
    assert out[(0, 0, 0)] == canonical("OC(=O)CNC(=O)c1ccc(cc1)-c1ccccc1")
    assert out[(1, 0, 1)] == canonical("O=C(N1CCCCC1)c1ccc(cc1)-c1ccc(F)cc1")
    # benzene has no carboxylic acid: amide coupling (step 1) fails for every tuple using it
    failed = {k for k, v in out.items() if v is None}
    assert failed == {k for k in out if k[1] == 1}
    assert all(enum.report.failures[k][0] == 1 for k in failed)
    assert enum.report.n_products == 4 and len(enum.report.failures) == 4
    with pytest.raises(ValueError, match="templates"):
        LibraryEnumerator([["CCN"], ["CC(=O)O"]], scheme=())


def test_every_builtin_block_reacts():
    b = builtin_blocks()
    enum = LibraryEnumerator(b.smiles)
    for c in range(3):
        for i in range(b.sizes[c]):
            t = [0, 0, 0]
            t[c] = i
            assert enum.product(tuple(t)) is not None, (c, b.smiles[c][i])
    assert enum.report.n_ambiguous == 0


# ---- descriptors, labels, split, models --------------------------------------------------------
def test_rule_of_four_and_qeppi_known_values():
    assert rule_of_four_count(to_mol("CC(=O)Oc1ccccc1C(=O)O")) == 0  # aspirin: small, polar
    big = to_mol("c1ccc2cc3cc4cc5ccccc5cc4cc3cc2c1CCCCCCCCOc1cc(OC)c(OC)c(OC)c1OC")
    assert rule_of_four_count(big) == 4
    assert qeppi_score(to_mol("CC(=O)Oc1ccccc1C(=O)O")) == pytest.approx(0.33, abs=0.01)


def _product_mols(n=120, seed=0):
    from workbench.del_gflownet.reactions import LibraryEnumerator

    b = builtin_blocks()
    enum, rng, out = LibraryEnumerator(b.smiles), np.random.default_rng(seed), []
    while len(out) < n:
        s = enum.product(tuple(int(rng.integers(k)) for k in b.sizes))
        if s is not None:
            out.append(to_mol(s))
    return out


def test_feature_set_shares_no_inputs_with_the_proxy_label():
    import QEPPI

    from workbench.del_gflownet import Config
    from workbench.del_gflownet.models import featurize, label_feature_overlap, proxy_label_inputs

    lab = proxy_label_inputs()
    # the label inputs are what the qeppi calculator really calls, plus the Rule of Four's four
    calc_funcs = list(QEPPI.QEPPI_Calculator().desc_func_dict.values())
    assert all(any(f is g for g in lab.values()) for f in calc_funcs) and len(lab) == len(calc_funcs) + 4
    assert label_feature_overlap(Config().features) == []
    assert "MolWt=ro4:MolWt" in label_feature_overlap("ecfp+desc")  # the check can fail
    # numerically: no feature column is (nearly) a function of any label input on product molecules
    mols = _product_mols()
    inputs = np.array([[f(m) for f in lab.values()] for m in mols])  # (M, 11)

    def max_abs_corr(x):
        x = x[:, x.std(0) > 0]
        xs = (x - x.mean(0)) / x.std(0)
        ys = (inputs - inputs.mean(0)) / inputs.std(0)
        return float(np.abs(xs.T @ ys / len(mols)).max())

    assert max_abs_corr(featurize(mols, Config().features)) < 0.9
    assert max_abs_corr(featurize(mols, "ecfp+desc")) > 0.99


def test_run_refuses_label_inputs_as_features_with_proxy_labels():
    from workbench.del_gflownet import Config, run

    with pytest.raises(ValueError, match="inputs of the proxy label"):
        run(Config(features="ecfp+desc", n_label_molecules=40, n_blocks_per_cycle=6), progress=False)


def test_scaffold_split_has_no_leakage():
    cores = ["c1ccccc1", "c1ccncc1", "C1CCCCC1", "c1ccc2ccccc2c1", "c1ccsc1", "C1CCNCC1", "c1cnccn1", "C1CCOC1"]
    smiles = [f"{tail}{core}" for core in cores for tail in ("C", "CC", "OC", "CCC", "N")][:37]
    scaff = [murcko_scaffold(to_mol(s)) for s in smiles]
    tr, te = scaffold_split(scaff, 0.25, seed=3)
    assert len(tr) + len(te) == len(smiles) and not set(tr) & set(te)
    assert not {scaff[i] for i in tr} & {scaff[i] for i in te}
    assert 0.1 < len(te) / len(smiles) < 0.4
    with pytest.raises(ValueError):
        scaffold_split(["c1ccccc1"] * 10, 0.2)


def test_classifier_learns_a_known_substructure_rule():
    rng = np.random.default_rng(0)
    aryl = ["c1ccccc1", "c1ccncc1", "c1ccsc1", "c1ccoc1"]
    subs = ["C", "CC", "OC", "F", "Cl", "C(F)(F)F", "C#N", "N(C)C"]
    smiles = sorted({canonical(f"{a}{s}".replace("c1cc", f"c1c({t})c", 1)) for a in aryl for s in subs
                     for t in ("C", "O", "Cl", "Br", "CC")})
    y = np.array([int("Br" in s) for s in smiles])  # known truth: bromine present
    mols = [to_mol(s) for s in smiles]
    idx = rng.permutation(len(mols))
    tr, te = idx[: len(idx) * 2 // 3], idx[len(idx) * 2 // 3:]
    for kind in ("rf", "mlp", "gnn"):
        m = PPIModel(kind, seed=0, rf_trees=50, gnn_epochs=40).fit([mols[i] for i in tr], y[tr])
        p = m.predict_proba([mols[i] for i in te])
        assert p.shape == (len(te),) and np.all((p >= 0) & (p <= 1))
        # a ~100-molecule set: the MLP (one hidden layer, early stopping) is the weakest of the three
        assert evaluate(y[te], p)["roc_auc"] > (0.75 if kind == "mlp" else 0.85), kind


# ---- environments ------------------------------------------------------------------------------
def _const_reward(bits):
    return torch.zeros(bits.shape[0])


def test_flat_masks_quota_and_exit():
    env = FlatDELEnv([3, 2], [2, 1], _const_reward)
    s = env.reset(1)
    m = s.forward_masks[0]
    assert m[:5].all() and not m[5]  # every block, no exit
    s = env.step(s, env.actions_from_tensor(torch.tensor([[0]])))
    s = env.step(s, env.actions_from_tensor(torch.tensor([[2]])))  # cycle 0 complete
    m = s.forward_masks[0]
    assert m.tolist() == [False, False, False, True, True, False]
    assert s.backward_masks[0].tolist() == [True, False, True, False, False]
    s = env.step(s, env.actions_from_tensor(torch.tensor([[4]])))
    assert s.forward_masks[0].tolist() == [False] * 5 + [True]  # only exit once complete


def test_hierarchical_masks_phases_and_exit():
    env = HierarchicalDELEnv([4, 2], [2, 1], [np.array([0, 0, 1, 1]), np.array([0, 0])], _const_reward)
    n, c, k = 6, 2, 3
    assert env.n_actions == n + c + k + 1
    s = env.reset(1)
    m = s.forward_masks[0]
    assert m[n:n + c].all() and m.sum() == 2  # phase 0: choose a cycle
    act = lambda a: env.actions_from_tensor(torch.tensor([[a]]))  # noqa: E731
    s = env.step(s, act(n + 0))  # cycle 0
    m = s.forward_masks[0]
    assert m[n + c:n + c + 2].all() and m.sum() == 2  # phase 1: its two clusters
    assert s.backward_masks[0].nonzero().flatten().tolist() == [n + 0]
    s = env.step(s, act(n + c + 1))  # cluster 1 of cycle 0 = blocks 2, 3
    assert s.forward_masks[0].nonzero().flatten().tolist() == [2, 3]
    s = env.step(s, act(2))
    assert s.tensor[0].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    for a in (n + 0, n + c + 1, 3):  # fill cluster 1 completely
        s = env.step(s, act(a))
    m = s.forward_masks[0]
    assert m.nonzero().flatten().tolist() == [n + 1]  # cycle 0 full: only cycle 1, no exit
    for a in (n + 1, n + c + 2, 4):
        s = env.step(s, act(a))
    assert s.forward_masks[0].nonzero().flatten().tolist() == [env.n_actions - 1]
    # a cluster whose blocks are all chosen is masked
    env2 = HierarchicalDELEnv([4, 2], [3, 1], [np.array([0, 0, 1, 1]), np.array([0, 0])], _const_reward)
    s = env2.reset(1)
    for a in (n, n + c + 1, 2, n, n + c + 1, 3, n):
        s = env2.step(s, env2.actions_from_tensor(torch.tensor([[a]])))
    assert s.forward_masks[0].nonzero().flatten().tolist() == [n + c + 0]


@pytest.mark.parametrize("space", ["flat", "hierarchical"])
def test_forward_backward_step_consistency(space):
    rng = np.random.default_rng(1)
    sizes, quotas = [5, 4, 3], [2, 2, 1]
    if space == "flat":
        env = FlatDELEnv(sizes, quotas, _const_reward)
    else:
        env = HierarchicalDELEnv(sizes, quotas, [np.array([0, 1, 0, 1, 2]), np.array([0, 0, 1, 1]),
                                                  np.array([0, 1, 1])], _const_reward)
    for _ in range(20):
        s = env.reset(1)
        n_steps = 0
        while True:
            fm = s.forward_masks[0].numpy()
            assert fm.any()
            a = int(rng.choice(np.flatnonzero(fm)))
            if a == env.n_actions - 1:
                assert s.tensor[0, : env.n_blocks].sum() == sum(quotas)
                break
            act = env.actions_from_tensor(torch.tensor([[a]]))
            s2 = env.step(s, act)
            assert s2.backward_masks[0, a]  # the action is a valid parent edge of the child
            back = env.backward_step(s2, act)
            assert torch.equal(back.tensor, s.tensor)
            s = s2
            n_steps += 1
        assert n_steps == (1 if space == "flat" else 3) * sum(quotas)


def test_cluster_blocks_groups_similar_structures():
    smiles = ["CCCCCCCC", "CCCCCCCCC", "CCCCCCCCCC", "c1ccc2ccccc2c1", "c1ccc2cc3ccccc3cc2c1", "c1ccc2ccccc2c1C"]
    lab = cluster_blocks(smiles, 2)
    assert lab.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError):
        cluster_blocks(smiles, 7)


# ---- reward ------------------------------------------------------------------------------------
def test_library_reward_closed_form_and_sampling():
    rng = np.random.default_rng(0)
    table = rng.uniform(size=(4, 3, 2))
    r = LibraryReward(TableScorer(table), [4, 3, 2], beta=5.0)
    bits = np.zeros(9, bool)
    bits[[0, 2, 4, 5, 7]] = True  # cycle 0: {0, 2}; cycle 1: {0, 1}; cycle 2: {0}
    expect = 5.0 * table[np.ix_([0, 2], [0, 1], [0])].mean()
    assert r.log_reward(bits[None])[0] == pytest.approx(expect)
    # sampled: at most max_products tuples, deterministic per library, all inside L(x)
    rs = LibraryReward(TableScorer(table), [4, 3, 2], beta=5.0, max_products=3, seed=1)
    p1, p2 = rs.products(bits), rs.products(bits)
    assert p1.shape == (3, 3) and np.array_equal(p1, p2)
    assert all(t[0] in (0, 2) and t[1] in (0, 1) and t[2] == 0 for t in p1.tolist())
    # failures: excluded from L(x) or scored zero
    t2 = table.copy()
    t2[0, 0, 0] = np.nan
    ok = table[np.ix_([0, 2], [0, 1], [0])].ravel()[1:]
    assert LibraryReward(TableScorer(t2), [4, 3, 2], 5.0).mean_p(bits[None])[0] == pytest.approx(ok.mean())
    assert LibraryReward(TableScorer(t2), [4, 3, 2], 5.0, failure_policy="zero").mean_p(bits[None])[0] == \
        pytest.approx(ok.sum() / 4)
    with pytest.raises(ValueError):
        r.selection(np.zeros(5))


class _CountingModel:
    """p = heavy-atom count / 100; counts the molecules it is asked about."""

    def __init__(self):
        self.n = 0

    def predict_proba(self, mols):
        self.n += len(mols)
        return np.array([m.GetNumHeavyAtoms() / 100 for m in mols])


def test_score_cache_gives_identical_scores_with_fewer_model_calls():
    blocks = [["NCC(=O)O", "NC(C)C(=O)O"], ["O=C(O)c1ccc(Br)cc1"], ["OB(O)c1ccccc1", "OB(O)c1ccc(C)cc1"]]
    tuples = np.array([[0, 0, 0], [1, 0, 1], [0, 0, 0], [1, 0, 1], [1, 0, 0]])
    cached_model, plain_model = _CountingModel(), _CountingModel()
    cached = ModelScorer(LibraryEnumerator(blocks), cached_model, cache=True)
    plain = ModelScorer(LibraryEnumerator(blocks, cache=False), plain_model, cache=False)
    a = np.concatenate([cached.score_tuples(tuples), cached.score_tuples(tuples)])
    b = np.concatenate([plain.score_tuples(tuples), plain.score_tuples(tuples)])
    assert np.array_equal(a, b)
    assert a[0] == pytest.approx(to_mol("OC(=O)CNC(=O)c1ccc(cc1)-c1ccccc1").GetNumHeavyAtoms() / 100)
    assert cached_model.n == 3 and plain_model.n == 6  # unique per call without a cache


# ---- exact distribution of trained samplers ----------------------------------------------------
def _toy(space: str, beta: float = 4.0):
    rng = np.random.default_rng(0)
    sizes, quotas = [4, 4], [2, 2]
    reward = LibraryReward(TableScorer(rng.uniform(size=(4, 4))), sizes, beta=beta)
    if space == "flat":
        env = FlatDELEnv(sizes, quotas, reward.log_reward_torch)
    else:
        env = HierarchicalDELEnv(sizes, quotas, [np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])],
                                 reward.log_reward_torch)
    libs = all_libraries(sizes, quotas)
    lr = reward.log_reward(libs)
    target = np.exp(lr - lr.max())
    return env, libs, target / target.sum(), lr


def _exact(env, model, libs):
    dist = exact_terminal_distribution(env, model.pf)
    assert sum(dist.values()) == pytest.approx(1.0, abs=1e-5)
    assert len(dist) == len(libs) == env.n_terminating_states_exact()
    return np.array([dist[tuple(int(v) for v in b)] for b in libs])


def test_untrained_sampler_is_far_from_target():
    env, libs, target, _ = _toy("flat")
    torch.manual_seed(0)
    model = build_gflownet(env, "tb", hidden=64)
    assert distribution_distances(_exact(env, model, libs), target)["l1"] > 0.25


@pytest.mark.parametrize("space,objective,iters", [("flat", "tb", 250), ("hierarchical", "tb", 250),
                                                    ("flat", "db", 300)])
def test_trained_sampler_matches_normalised_reward(space, objective, iters):
    env, libs, target, lr = _toy(space)
    torch.manual_seed(0)
    model = build_gflownet(env, objective, hidden=64)
    hist = train_gflownet(env, model, n_iterations=iters, batch_size=32, lr=3e-3, seed=0, progress=False)
    d = distribution_distances(_exact(env, model, libs), target)
    assert d["l1"] < 0.15 and d["js"] < 0.01, d
    if objective == "tb":
        assert hist["log_z"][-1] == pytest.approx(np.log(np.exp(lr).sum()), abs=0.1)
    s = sample_libraries(env, model, 50, seed=0)
    assert s.shape == (50, 8) and (s[:, :4].sum(1) == 2).all() and (s[:, 4:].sum(1) == 2).all()


# at high contrast (beta = 12: the best library has ~34x the mass of the median one) the low-contrast
# budget leaves L1 ~0.16-0.22; these budgets reach the target for both action spaces and both objectives
@pytest.mark.parametrize("space,objective,iters", [
    ("flat", "tb", 1000),
    pytest.param("hierarchical", "tb", 1000, marks=pytest.mark.slow),
    pytest.param("flat", "db", 1000, marks=pytest.mark.slow),
    pytest.param("hierarchical", "db", 1500, marks=pytest.mark.slow)])
def test_trained_sampler_matches_sharp_reward(space, objective, iters):
    env, libs, target, lr = _toy(space, beta=12.0)
    assert target.max() / np.median(target) > 20  # the sharp case, not the toy's default contrast
    torch.manual_seed(0)
    model = build_gflownet(env, objective, hidden=64)
    train_gflownet(env, model, n_iterations=iters, batch_size=32, lr=3e-3, seed=0, progress=False)
    d = distribution_distances(_exact(env, model, libs), target)
    assert d["l1"] < 0.1 and d["js"] < 0.005, d


# ---- baselines and metrics ---------------------------------------------------------------------
def _separable(sizes):
    rng = np.random.default_rng(5)
    a = [rng.normal(size=n) for n in sizes]
    table = 1 / (1 + np.exp(-(a[0][:, None, None] + a[1][None, :, None] + a[2][None, None, :])))
    return table, a


def test_baselines_random_topk_annealing():
    sizes, quotas = [6, 5, 4], [2, 2, 1]
    table, a = _separable(sizes)
    reward = LibraryReward(TableScorer(table), sizes, beta=10.0)
    rand = bl.random_libraries(sizes, quotas, 30, seed=0)
    assert rand.shape == (30, 15)
    assert (rand[:, :6].sum(1) == 2).all() and (rand[:, 6:11].sum(1) == 2).all() and (rand[:, 11:].sum(1) == 1).all()
    libs = all_libraries(sizes, quotas)
    lr_all = reward.log_reward(libs)
    best = libs[np.argmax(lr_all)]
    # top-k by marginal p recovers each cycle's best blocks for a separable, monotone table
    top, info = bl.topk_library(reward, sizes, quotas, n_partners=200, seed=0)
    off = [0, 6, 11, 15]
    for c in range(3):
        assert set(np.flatnonzero(top[off[c]:off[c + 1]])) == set(np.argsort(-a[c])[: quotas[c]])
    assert reward.log_reward(top[None])[0] == pytest.approx(lr_all.max())
    sa, trace = bl.simulated_annealing(reward, sizes, quotas, n_chains=8, n_steps=150, seed=0, progress=False)
    assert trace["n_library_evaluations"] == 8 * 151
    assert np.any((sa == best).all(1))  # at least one chain ends at the global optimum
    assert reward.log_reward(sa).mean() > reward.log_reward(rand).mean()


def test_random_search_and_topk_runs_spend_the_stated_budget():
    sizes, quotas = [6, 5, 4], [2, 2, 1]
    table, a = _separable(sizes)
    scorer = TableScorer(table)
    reward = LibraryReward(scorer, sizes, beta=10.0)
    libs, _ = bl.random_search(reward, sizes, quotas, n_calls=200, n_out=10, seed=0)
    assert reward.n_library_calls == 200 and libs.shape == (10, 15)
    lr = reward.log_reward(libs)
    assert len(np.unique(libs, axis=0)) == 10 and np.all(np.diff(lr) <= 1e-12)  # distinct, best first
    pool = bl.random_libraries(sizes, quotas, 200, seed=0)  # the same draws: its best is the search's first
    assert lr[0] == pytest.approx(reward.log_reward(pool).max())
    m0 = scorer.n_evaluations
    top, info = bl.topk_libraries(reward, sizes, quotas, n_libraries=7, molecule_budget=7 * 15 * 9 + 5, seed=0)
    assert top.shape == (7, 15) and info["n_partners"] == 9
    assert scorer.n_evaluations - m0 == info["n_evaluations"] == 7 * 15 * 9
    with pytest.raises(ValueError, match="n_calls"):
        bl.random_search(reward, sizes, quotas, n_calls=5, n_out=10)


@pytest.mark.parametrize("space,objective", [("flat", "tb"), ("flat", "db"), ("hierarchical", "db")])
def test_training_makes_one_reward_call_per_trajectory(space, objective):
    env, _, _, _ = _toy(space)
    reward_calls = []
    fn = env.log_reward_fn
    env.log_reward_fn = lambda bits: (reward_calls.append(len(bits)), fn(bits))[1]
    model = build_gflownet(env, objective, hidden=16)
    train_gflownet(env, model, n_iterations=3, batch_size=5, seed=0, progress=False)
    assert sum(reward_calls) == 15  # DB's loss reuses the trajectories' rewards


def test_metrics_known_values():
    bits = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]], bool)
    d = jaccard_distance_matrix(bits)
    assert d[0, 1] == 0 and d[0, 2] == 1 and d[0, 3] == pytest.approx(2 / 3)
    mean_p = np.array([0.9, 0.9, 0.8, 0.85])
    assert count_modes(bits, mean_p, threshold=0.8, min_distance=0.7) == 2  # {0,1} and {2}; 3 too close
    assert count_modes(bits, mean_p, threshold=0.95, min_distance=0.1) == 0
    m = library_set_metrics(bits, mean_p * 10, 10.0, top_k=2, mode_threshold=0.8, mode_min_distance=0.7,
                            n_products=np.array([4, 4, 4, 3]))
    assert m["unique_fraction"] == 0.75 and m["top_k_mean_p"] == pytest.approx(0.875)
    assert m["library_size"] == {"min": 3, "mean": 3.75, "max": 4}
    assert m["n_modes"] == 2


# ---- end to end --------------------------------------------------------------------------------
def test_run_smoke_writes_results(tmp_path):
    from workbench.del_gflownet import Config, run
    from workbench.results import record

    cfg = Config(n_blocks_per_cycle=6, quota_per_cycle=2, n_label_molecules=150, models="rf", rf_trees=20,
                 n_iterations=3, batch_size=4, n_eval_samples=5, n_reference=20, n_clusters_per_cycle=2,
                 n_diversity_molecules=10, gflownets="flat:tb,hierarchical:db", action_space_seeds=2,
                 as_blocks_per_cycle=6, as_clusters_per_cycle=2, as_iterations=2)
    res = run(cfg, progress=False)
    s = res["summary"]
    assert s["labels"]["scaffold_overlap"] == 0 and s["enumeration_failures"] == 0
    assert s["feature_label_overlap"] == [] and set(s["leak_check_rf_roc_auc"]) == {"ecfp", "desc", "ecfp+desc"}
    assert set(s["methods"]) == {"random", "random_search", "gfn_flat_tb", "gfn_hierarchical_db", "topk", "annealing"}
    for m in res["methods"].values():
        assert all(sum(b) == 6 for b in m["bits"])
    # equal budget, as counted by the reward and the scorer while each method ran: the same number of
    # libraries out, 3 * 4 = 12 library rewards (8 products each) or their product-score equivalent
    budget = s["budget"]
    assert {b["n_libraries"] for b in budget.values()} == {5}
    assert budget["random"] == {"n_libraries": 5, "library_calls": 0, "molecule_scores": 0}
    for name in ("random_search", "gfn_flat_tb", "gfn_hierarchical_db", "annealing"):
        assert budget[name]["library_calls"] == 12 and budget[name]["molecule_scores"] == 12 * 8, name
    assert budget["topk"]["library_calls"] == 0 and 12 * 8 - 18 * 5 < budget["topk"]["molecule_scores"] <= 12 * 8
    a = res["action_space"]
    assert a["setting"]["seeds"] == 2 and set(a["per_seed"]) == {0, 1}
    for row in a["per_seed"].values():
        assert row["flat"]["training_reward_calls"] == row["hierarchical"]["training_reward_calls"] == 2 * 4
        assert row["flat"]["gap_to_optimum"] >= 0 and row["hierarchical"]["gap_to_optimum"] >= 0
    assert res["views"]["random"][0]["blocks"][0][0]["smiles"]
    record(res, cfg, tmp_path, notebook_id="del_gflownet", print_summary=False)
    assert json.loads((tmp_path / "results.json").read_text())["metrics"]["summary"]["labels"]["n"] > 100
    with pytest.raises(ValueError, match="reward_model"):
        run(Config(models="rf", reward_model="gnn"), progress=False)


# ---- flat vs hierarchical on the known-truth cluster reward -------------------------------------
def test_cluster_table_optimum_matches_enumeration():
    from workbench.del_gflownet.action_space import cluster_table, optimal_library

    clusters = [np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 0]), np.array([0, 0, 1])]
    sizes, quotas = [5, 4, 3], [2, 2, 1]
    table, z = cluster_table(clusters, 0.8, seed=3)
    assert table.shape == (5, 4, 3) and np.all((table > 0) & (table < 1))
    reward = LibraryReward(TableScorer(table), sizes, beta=1.0)
    libs = all_libraries(sizes, quotas)
    best = reward.mean_p(optimal_library(z, quotas)[None])[0]
    assert best == pytest.approx(reward.mean_p(libs).max())
    # share 1: blocks of one cluster score alike; share 0: no cluster structure at all
    t1, z1 = cluster_table(clusters, 1.0, seed=3)
    assert z1[0][0] == z1[0][1] and z1[0][2] == z1[0][3]
    _, z0 = cluster_table(clusters, 0.0, seed=3)
    assert z0[0][0] != z0[0][1]
    with pytest.raises(ValueError, match="cluster_share"):
        cluster_table(clusters, 1.5, seed=0)
