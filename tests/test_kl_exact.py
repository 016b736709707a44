"""Known answers for the KL estimator analysis: finite differences, the paper's expected-gradient table,
and Monte Carlo agreement within the exact variance."""
import math
from statistics import NormalDist

import pytest
import torch

from workbench.kl.estimators import KLConfig, kl_estimate, on_policy_configs, parse_config, surrogate
from workbench.kl.exact import analyse, config_moments, exact_divergences, mc_gradient
from workbench.kl.policies import MLPPolicy, TabularPolicy, all_sequences, interpolate, perturb, sample, token_logprobs

POLICIES = [TabularPolicy(3, 3), MLPPolicy(3, 3, hidden=6)]


def _setup(policy, delta=0.6, seed=0):
    ref = policy.init_params(seed)
    return perturb(ref, delta, seed + 1), ref


def _exact_kls(policy, params, ref):
    Y = all_sequences(policy.V, policy.L)
    lp = token_logprobs(policy, params, Y)[0].sum(-1)
    lr = token_logprobs(policy, ref, Y)[0].sum(-1)
    return float((lp.exp() * (lp - lr)).sum()), float((lr.exp() * (lr - lp)).sum())


def test_estimator_values_and_expectations():
    # E_pi[k1] = E_pi[k3] = KL(pi||ref) for one categorical; k2 differs
    g = torch.Generator().manual_seed(0)
    lp = torch.log_softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    lr = torch.log_softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    kl = float((lp.exp() * (lp - lr)).sum())
    for k in ("k1", "k3"):
        e = float((lp.exp() * kl_estimate(lp[None], lr[None], k)[0]).sum())
        assert abs(e - kl) < 1e-12
    e2 = float((lp.exp() * kl_estimate(lp[None], lr[None], "k2")[0]).sum())
    assert abs(e2 - kl) > 1e-3
    assert (kl_estimate(lp[None], lr[None], "k3") >= 0).all()


def test_clamps_and_bad_input():
    lp = torch.tensor([[0.0, -30.0]], dtype=torch.float64)
    lr = torch.tensor([[-30.0, 0.0]], dtype=torch.float64)
    assert float(kl_estimate(lp, lr, "k3", "verl").max()) == 10.0
    assert float(kl_estimate(lp, lr, "k2", "openrlhf").max()) == 10.0
    assert float(kl_estimate(lp, lr, "k2", "verl").max()) == 450.0  # verl clamps only low_var_kl
    with pytest.raises(ValueError):
        kl_estimate(lp, lr, "k4")
    with pytest.raises(ValueError):
        KLConfig("k1", "in_reward")
    with pytest.raises(ValueError):
        surrogate(KLConfig("k1", "reward_seq", "token"), lp, lr)  # off-policy weights need logp_mu
    for c in on_policy_configs() + [KLConfig("k3", "loss", "sequence", "verl")]:
        assert parse_config(c.name) == c


@pytest.mark.parametrize("policy", POLICIES, ids=["tabular", "mlp"])
def test_exact_gradients_match_finite_differences(policy):
    pi, ref = _setup(policy)
    ex = exact_divergences(policy, pi, ref)
    rev, fwd = _exact_kls(policy, pi, ref)
    assert abs(ex["rev_kl"] - rev) < 1e-12 and abs(ex["fwd_kl"] - fwd) < 1e-12
    g = torch.Generator().manual_seed(3)
    eps = 1e-5
    for _ in range(3):
        d = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in pi]
        dflat = torch.cat([x.reshape(-1) for x in d])
        plus = [p + eps * x for p, x in zip(pi, d)]
        minus = [p - eps * x for p, x in zip(pi, d)]
        (rp, fp), (rm, fm) = _exact_kls(policy, plus, ref), _exact_kls(policy, minus, ref)
        assert abs((rp - rm) / (2 * eps) - float(ex["grad_rev"] @ dflat)) < 1e-7 * max(1, abs(rp - rm) / eps)
        assert abs((fp - fm) / (2 * eps) - float(ex["grad_fwd"] @ dflat)) < 1e-7 * max(1, abs(fp - fm) / eps)
    # and k1-in-reward's expected gradient matches those finite differences too (same vector, checked below)


@pytest.mark.parametrize("policy", POLICIES, ids=["tabular", "mlp"])
def test_paper_table_of_expected_gradients(policy):
    pi, ref = _setup(policy)
    cfgs = [parse_config(n) for n in ("k1 in reward", "k1 in reward-rtg", "k3 in loss+reward", "k1 in loss",
                                      "k3 in loss", "k2 in loss", "k3 in reward")]
    a = analyse(policy, pi, ref, cfgs, keep_vectors=True)
    rows = {r["config"]: r for r in a["rows"]}
    ex = a["_ref"]
    # unbiased to ~1e-8 relative error in float64
    for n in ("k1 in reward", "k1 in reward-rtg", "k3 in loss+reward"):
        assert rows[n]["rel_error"] < 1e-8, (n, rows[n]["rel_error"])
    # k1 in loss: zero expected gradient
    assert float(rows["k1 in loss"]["_mean"].norm()) < 1e-10 * a["grad_norm"]
    # k3 in loss = per-token forward-KL gradient (prefix distribution fixed), and biased for reverse KL
    assert rows["k3 in loss"]["rel_to_tok_fwd"] < 1e-8
    assert rows["k3 in loss"]["rel_error"] > 1e-2
    # k2 in loss = per-token reverse-KL partial gradient, not the sequence gradient for L > 1
    assert rows["k2 in loss"]["rel_to_tok_rev"] < 1e-8
    assert rows["k2 in loss"]["rel_error"] > 1e-3
    # k3 in reward = grad KL - (k3-in-loss term)
    resid = rows["k3 in reward"]["_mean"] + rows["k3 in loss"]["_mean"] - ex["grad_rev"]
    assert float(resid.norm()) < 1e-8 * a["grad_norm"]


@pytest.mark.parametrize("policy", [TabularPolicy(4, 1), MLPPolicy(4, 1, hidden=5)], ids=["tabular", "mlp"])
def test_k2_in_loss_unbiased_only_at_length_one(policy):
    pi, ref = _setup(policy)
    a = analyse(policy, pi, ref, [KLConfig("k2", "loss")])
    assert a["rows"][0]["rel_error"] < 1e-8


def test_tabular_variance_closed_form_matches_per_sample_gradients():
    from workbench.kl.exact import _per_sample_second_moment, _tabular_second_moment
    from workbench.kl.estimators import coefficients

    pol = TabularPolicy(3, 3)
    pi, ref = _setup(pol)
    Y = all_sequences(3, 3)
    lp, lp_all = token_logprobs(pol, pi, Y)
    lr, _ = token_logprobs(pol, ref, Y)
    q = lp.sum(-1).exp()
    for cfg in on_policy_configs():
        c = coefficients(cfg, lp, lr)
        a = _tabular_second_moment(pol, Y, lp_all, c, q)
        b = _per_sample_second_moment(pol, pi, Y, c, q, None)
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def test_sampler_matches_enumerated_distribution():
    pol = MLPPolicy(3, 2, hidden=5)
    params = pol.init_params(2)
    Y = sample(pol, params, 60_000, torch.Generator().manual_seed(0))
    idx = Y[:, 0] * 3 + Y[:, 1]
    freq = torch.bincount(idx, minlength=9).double() / Y.shape[0]
    p = token_logprobs(pol, params, all_sequences(3, 2))[0].sum(-1).exp()
    sd = (p * (1 - p) / Y.shape[0]).sqrt()
    assert ((freq - p).abs() <= 5 * sd).all()
    assert abs(float(p.sum()) - 1) < 1e-12


def _mc_within_variance(policy, pi, ref, cfgs, mu=None, n=3000, seed=0, alpha=1e-3):
    mom = config_moments(policy, pi, ref, cfgs, mu)
    gen = torch.Generator().manual_seed(seed)
    for cfg, m in zip(cfgs, mom):
        est = mc_gradient(policy, pi, ref, cfg, n, gen, mu)
        P = est.numel()
        # per coordinate: CLT with a Bonferroni-corrected two-sided level alpha over P coordinates
        z = NormalDist().inv_cdf(1 - alpha / (2 * P))
        sd = (m["var"] / n).sqrt()
        bad = (est - m["mean"]).abs() > z * sd + 1e-12
        assert not bad.any(), (cfg.name, int(bad.sum()))
        # aggregate: E||est - mean||^2 = trace / n; Markov at level alpha
        assert float((est - m["mean"]).square().sum()) <= m["trace"] / n / alpha


@pytest.mark.parametrize("policy", POLICIES, ids=["tabular", "mlp"])
def test_monte_carlo_agrees_with_exact_within_variance(policy):
    pi, ref = _setup(policy, delta=0.4)
    _mc_within_variance(policy, pi, ref, on_policy_configs())


def test_monte_carlo_off_policy():
    from workbench.kl.estimators import off_policy_configs

    pol = TabularPolicy(3, 2)
    pi, ref = _setup(pol, delta=0.4)
    mu = interpolate(ref, pi, 0.5)
    _mc_within_variance(pol, pi, ref, off_policy_configs(), mu=mu)


def test_off_policy_sequence_weights_restore_unbiasedness():
    pol = TabularPolicy(3, 3)
    pi, ref = _setup(pol)
    mu = interpolate(ref, pi, 0.5)
    cfgs = [parse_config(n) for n in ("k1 in reward", "k1 in reward [sequence IS]", "k1 in reward [token IS]",
                                      "k3 in loss+reward [sequence IS]", "k3 in loss [sequence IS]")]
    rows = {r["config"]: r for r in analyse(pol, pi, ref, cfgs, mu_params=mu)["rows"]}
    assert rows["k1 in reward"]["rel_error"] > 1e-2
    assert rows["k1 in reward [token IS]"]["rel_error"] > 1e-3
    assert rows["k1 in reward [sequence IS]"]["rel_error"] < 1e-8
    assert rows["k3 in loss+reward [sequence IS]"]["rel_error"] < 1e-8
    assert rows["k3 in loss [sequence IS]"]["rel_to_tok_fwd"] < 1e-8


def test_clamps_inactive_near_reference_and_biasing_far_from_it():
    pol = TabularPolicy(3, 2)
    names = ("k3 in loss+reward (verl clamp)", "k1 in reward (openrlhf clamp)")
    pi, ref = _setup(pol, delta=0.3)
    rows = analyse(pol, pi, ref, [parse_config(n) for n in names])["rows"]
    assert all(r["rel_error"] < 1e-8 for r in rows)
    ref_peaked = pol.init_params(0, scale=10.0)  # log ratios of likely tokens beyond the clamp bands
    pi_far = perturb(ref_peaked, 12.0, 5)
    rows = analyse(pol, pi_far, ref_peaked, [parse_config(n) for n in names])["rows"]
    assert rows[0]["rel_error"] > 1e-2  # k3 values clamped at 10 on likely tokens
    assert rows[1]["rel_error"] > 1e-8  # k1 clamped only on unlikely tokens: small but far above rounding


def _far_pair(pol, seed=0):
    # peaked reference and a far policy: log ratios beyond the clamp bands on likely tokens
    ref = pol.init_params(seed, scale=10.0)
    return perturb(ref, 12.0, seed + 5), ref


def test_closed_coefficients_match_autograd_coefficients():
    import itertools

    from workbench.kl.estimators import CLAMPS, ESTIMATORS, IS_WEIGHTS, PLACEMENTS, coefficients
    from workbench.kl.exact import _closed_coefficients

    g = torch.Generator().manual_seed(0)
    lp, lr = (15 * torch.randn(64, 5, generator=g, dtype=torch.float64) for _ in range(2))  # clamps active
    lm = lp + torch.randn(64, 5, generator=g, dtype=torch.float64)  # moderate importance weights
    cfgs = [KLConfig(*c) for c in itertools.product(ESTIMATORS, PLACEMENTS, IS_WEIGHTS, CLAMPS)]
    out = torch.empty(len(cfgs), 64, 5, dtype=torch.float64)
    _closed_coefficients(cfgs, lp, lr, lm, out)
    for cfg, c in zip(cfgs, out):
        want = coefficients(cfg, lp, lr, lm)
        assert float((c - want).abs().max()) <= 1e-12 * float(want.abs().max()), cfg.name
    assert (out == 0).any() and (out.abs() > 1e6).any()  # zero derivatives of clamps, large unclamped values
    with pytest.raises(ValueError, match="logp_mu"):
        _closed_coefficients([KLConfig("k1", "loss", "token")], lp, lr, None, out[:1])


@pytest.mark.parametrize("V,L", [(2, 1), (3, 3), (2, 5), (4, 2)])
@pytest.mark.parametrize("far", [False, True], ids=["near", "far"])
def test_tabular_fast_path_matches_autograd(V, L, far):
    from workbench.kl.estimators import off_policy_configs

    pol = TabularPolicy(V, L)
    pi, ref = _far_pair(pol) if far else _setup(pol)
    mu = interpolate(ref, pi, 0.5)
    a, b = exact_divergences(pol, pi, ref), exact_divergences(pol, pi, ref, method="autograd")
    for k in a:
        scale = max(1.0, abs(a[k]) if isinstance(a[k], float) else float(b[k].abs().max()))
        diff = abs(a[k] - b[k]) if isinstance(a[k], float) else float((a[k] - b[k]).abs().max())
        assert diff < 1e-10 * scale, k
    clamped = [KLConfig("k3", "loss+reward", "none", "verl"), KLConfig("k1", "reward_rtg", "none", "openrlhf")]
    for cfgs, m in ((on_policy_configs() + clamped, None), (off_policy_configs(), mu)):
        ref_mom = config_moments(pol, pi, ref, cfgs, m, method="autograd")
        for kw in ({}, {"chunk": V}, {"method": "blocks"}):  # one-token-block chunks exercise the alignment
            for x, y in zip(config_moments(pol, pi, ref, cfgs, m, **kw), ref_mom):
                scale = max(1.0, float(y["mean"].abs().max()), float(y["var"].abs().max()))
                assert float((x["mean"] - y["mean"]).abs().max()) < 1e-10 * scale
                assert float((x["var"] - y["var"]).abs().max()) < 1e-10 * scale
                assert abs(x["trace"] - y["trace"]) < 1e-10 * max(1.0, y["trace"])


def test_exact_method_argument_checked():
    pol = TabularPolicy(2, 2)
    pi, ref = _setup(pol)
    with pytest.raises(ValueError, match="method"):
        config_moments(pol, pi, ref, on_policy_configs(), method="fast")
    with pytest.raises(ValueError, match="method"):
        exact_divergences(pol, pi, ref, method="blocks")
