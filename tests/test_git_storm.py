"""Tests for workbench.git_storm: shapes, masking schedule (closed form), masked-only MaskGIT loss,
KV-cached imagination == uncached, two-hot and lambda-return known answers, env wrapper shapes, a short
training run lowering the loss on a fixed batch, and a tiny end-to-end run()."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from workbench.git_storm import Config, WorldModel, make_env, run
from workbench.git_storm.agent import ReturnNorm, lambda_returns
from workbench.git_storm.core import Replay, build_world_model, collect, psnr, torch_gen
from workbench.git_storm.nets import CausalTransformer, TwoHot, symexp, symlog
from workbench.git_storm.priors import MaskGITPrior, mask_ratio, random_chunks, sample_train_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in tests/conftest.py


TINY = Config(env="minatar:breakout", minatar_scale=2, enc_channels=(8, 16), groups=8, classes=8, d_model=32, n_layers=2,
              n_heads=4, mlp_hidden=32, mg_embed=16, mg_layers=2, mg_heads=2, mg_mlp=32, batch_size=4, batch_length=12,
              ac_hidden=32, imagine_batch_size=8, horizon=6, imagine_context=4, draft_steps=4, revise_steps=4,
              decode_scan=(1, 8), seeds=1)


def _batch(B=4, T=12, seed=0, n_actions=3, side=20):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 256, (B, T, 3, side, side), generator=g, dtype=torch.uint8)
    act = torch.randint(0, n_actions, (B, T), generator=g)
    rew = torch.randint(-1, 2, (B, T), generator=g).float()
    term = (torch.rand(B, T, generator=g) < 0.1).float()
    return obs, act, rew, term


# ---------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("prior", ["mlp", "maskgit"])
def test_world_model_shapes_and_finite_loss(prior):
    wm = build_world_model(TINY, (3, 20, 20), 3, False, prior)
    obs, act, rew, term = _batch()
    post = wm.posterior_logits(obs)
    assert post.shape == (4, 12, 8, 8)
    assert torch.allclose(post.exp().sum(-1), torch.ones(4, 12, 8), atol=1e-5)
    # 1% uniform mix: every class keeps at least mix / K probability
    assert float(post.detach().exp().min()) >= 0.01 / 8 - 1e-7
    loss, m = wm.loss(obs, act, rew, term, torch_gen(0, "t"))
    assert torch.isfinite(loss) and set(m) >= {"recon", "reward", "termination", "kl_dyn", "kl_rep"}
    loss.backward()
    assert wm.encoder.net[0].weight.grad is not None and wm.prior_kind == prior


def test_paper_size_shapes():
    from workbench.git_storm import paper_model_config

    cfg = paper_model_config()
    wm = WorldModel(cfg, (3, 64, 64), 6, False, "maskgit")
    assert wm.encoder.final_side == 4 and wm.encoder.out_dim == 256 * 16
    z = torch.nn.functional.one_hot(torch.randint(0, 32, (2, 32)), 32).float()
    wm.eval()
    assert wm.decode(z).shape == (2, 3, 64, 64)
    assert wm.prior.logits(torch.randn(2, 512)).shape == (2, 32, 32)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="divisible"):
        build_world_model(dataclasses.replace(TINY, d_model=30), (3, 20, 20), 3, False, "maskgit")
    with pytest.raises(ValueError, match="unknown prior"):
        build_world_model(TINY, (3, 20, 20), 3, False, "gru")
    with pytest.raises(ValueError, match="env spec"):
        make_env("breakout", TINY)
    with pytest.raises(ValueError, match="unknown MinAtar game"):
        make_env("minatar:pong", TINY)
    with pytest.raises(ValueError, match="mask schedule"):
        mask_ratio(torch.tensor(0.5), "exp")


# ------------------------------------------------------------------------------------ masking schedule
def test_cosine_schedule_values():
    u = torch.tensor([0.0, 1 / 3, 0.5, 1.0])
    assert torch.allclose(mask_ratio(u), torch.tensor([1.0, math.sqrt(3) / 2, math.sqrt(0.5), 0.0]), atol=1e-6)


@pytest.mark.parametrize("G", [8, 32])
def test_training_mask_count_matches_closed_form(G):
    """E[max(1, floor(G cos(pi U / 2)))] in closed form: P(floor(G r) >= k) = (2/pi) arccos(k / G)."""
    m = sample_train_mask(200_000, G, "cosine", torch.Generator().manual_seed(0))
    counts = m.sum(1).double()
    ks = np.arange(1, G + 1)
    e_floor = np.sum(2 / np.pi * np.arccos(ks / G))
    p_zero = 1 - 2 / np.pi * np.arccos(1 / G)
    expected = e_floor + p_zero
    assert abs(float(counts.mean()) - expected) < 0.02 * G / 8
    assert int(counts.min()) >= 1 and int(counts.max()) <= G
    # P(count == G) = P(cos(pi U/2) = 1) -> only from U ~ 0: rare; P(count >= G/2) = (2/pi) arccos(1/2) = 2/3
    assert abs(float((counts >= G / 2).double().mean()) - 2 / 3) < 0.01


def test_random_chunks_partition():
    ids = random_chunks(50, 10, 3, torch.Generator().manual_seed(0))
    for row in ids:
        assert sorted(np.bincount(row.numpy(), minlength=3).tolist()) == [3, 3, 4]


# ---------------------------------------------------------------------------- masked-only MaskGIT loss
def test_maskgit_loss_only_on_masked_positions():
    torch.manual_seed(0)
    wm = build_world_model(TINY, (3, 20, 20), 3, False, "maskgit")
    prior: MaskGITPrior = wm.prior
    G, K = TINY.groups, TINY.classes
    h = torch.randn(5, TINY.d_model)
    z_next = torch.randint(0, K, (5, G))
    mask = torch.zeros(5, G, dtype=torch.bool)
    mask[:, :3] = True
    logits, used = prior.train_logits(h, z_next, z_next, mask=mask)
    assert torch.equal(used, mask)
    logits.retain_grad()
    post = torch.randn(5, G, K, requires_grad=True)
    from workbench.git_storm.nets import categorical_kl

    (categorical_kl(post, logits) * used.float()).sum().backward()
    # gradients reach the masked positions only
    assert float(logits.grad[:, 3:].abs().max()) == 0.0 and float(logits.grad[:, :3].abs().max()) > 0
    assert float(post.grad[:, 3:].abs().max()) == 0.0
    # the world-model loss through the sampled mask: the KL terms ignore unmasked positions
    obs, act, rew, term = _batch()
    _, m1 = wm.loss(obs, act, rew, term, torch_gen(1, "a"))
    assert 0 < m1["mask_fraction"] < 1


def test_maskgit_inputs_hide_masked_tokens():
    """Changing the target tokens at masked positions must not change the prediction (no leak)."""
    prior = build_world_model(TINY, (3, 20, 20), 3, False, "maskgit").prior.eval()
    h = torch.randn(3, TINY.d_model)
    z = torch.randint(0, TINY.classes, (3, TINY.groups))
    mask = torch.zeros(3, TINY.groups, dtype=torch.bool)
    mask[:, ::2] = True
    z2 = z.clone()
    z2[mask] = (z2[mask] + 1) % TINY.classes
    a, _ = prior.train_logits(h, z, z, mask=mask)
    b, _ = prior.train_logits(h, z2, z2, mask=mask)
    assert torch.allclose(a, b)
    z3 = z.clone()
    z3[~mask] = (z3[~mask] + 1) % TINY.classes
    c, _ = prior.train_logits(h, z3, z3, mask=mask)
    assert not torch.allclose(a, c)


def test_draft_and_revise_recovers_a_known_conditional():
    """A MaskGIT trained on 4 tokens that all equal one uniform bit. Drawing the tokens one chunk at a
    time (4 draft chunks) reproduces the dependence (all equal); one parallel chunk samples each token
    from its marginal, so all four agree with probability 2 * (1/2)^4 = 1/8."""
    torch.manual_seed(0)
    G = 4
    prior = MaskGITPrior(d_model=4, groups=G, classes=2, embed=16, layers=1, heads=2, d_ff=32, unimix=0.0)
    opt = torch.optim.Adam(prior.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(120):
        bit = torch.randint(0, 2, (64,), generator=g)
        z = bit[:, None].expand(64, G)
        # masks with 1..G hidden tokens (the fully masked input is what the first draft chunk sees)
        count = torch.randint(1, G + 1, (64, 1), generator=g)
        m = torch.rand(64, G, generator=g).argsort(-1).argsort(-1) < count
        logits, m = prior.train_logits(torch.zeros(64, 4), z, z, mask=m)
        loss = -(torch.log_softmax(logits, -1).gather(-1, z[..., None]).squeeze(-1) * m).sum() / m.sum()
        opt.zero_grad(), loss.backward(), opt.step()
    prior.draft_steps, prior.revise_rounds = G, 0
    s = prior.sample(torch.zeros(2000, 4), torch.Generator().manual_seed(2)).argmax(-1)
    all_equal = (s == s[:, :1]).all(1).float().mean()
    assert float(all_equal) > 0.95 and 0.35 < float(s[:, 0].float().mean()) < 0.65
    prior.draft_steps = 1
    s = prior.sample(torch.zeros(2000, 4), torch.Generator().manual_seed(3)).argmax(-1)
    assert abs(float((s == s[:, :1]).all(1).float().mean()) - 1 / 8) < 0.04


# ------------------------------------------------------------------------------------------- KV cache
def test_transformer_cache_equals_full_pass():
    torch.manual_seed(0)
    tr = CausalTransformer(32, 2, 4, 64).eval()
    x = torch.randn(3, 10, 32)
    full, _ = tr(x)
    out, cache = tr(x[:, :4])
    steps = [out]
    for t in range(4, 10):
        o, cache = tr(x[:, t:t + 1], past=cache, start=t)
        steps.append(o)
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)


@pytest.mark.parametrize("prior", ["mlp", "maskgit"])
def test_kv_cached_imagination_equals_uncached(prior):
    wm = build_world_model(TINY, (3, 20, 20), 3, False, prior)
    obs, act, _, _ = _batch(B=3, T=4)
    pol_w = torch.randn(TINY.groups * TINY.classes + TINY.d_model, 3)

    def make_policy(g):
        return lambda z, h: torch.multinomial(torch.softmax(torch.cat([z, h], -1) @ pol_w, -1), 1, generator=g)[:, 0]

    outs = []
    for cache in (True, False):
        g = torch.Generator().manual_seed(5)
        outs.append(wm.imagine(obs, act, 8, policy=make_policy(g), generator=g, use_cache=cache, decode=True))
    a, b = outs
    assert torch.equal(a["actions"], b["actions"]) and torch.equal(a["z"], b["z"])
    for k in ("h", "reward", "term_logit", "frames"):
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    assert a["z"].shape == (3, 9, TINY.groups, TINY.classes) and a["frames"].shape == (3, 9, 3, 20, 20)


# ------------------------------------------------------------------------------- known answers (heads)
def test_symlog_twohot_round_trip():
    th = TwoHot(255)
    x = torch.tensor([-1000.0, -3.5, 0.0, 0.2, 1.0, 7.0, 12345.0])
    w = th.encode(x)
    assert torch.allclose(w.sum(-1), torch.ones(7)) and int((w > 0).sum(-1).max()) <= 2
    assert torch.allclose((w * th.bins).sum(-1), symlog(x), atol=1e-5)
    assert torch.allclose(th.decode(torch.log(w + 1e-30)), x, rtol=1e-4)
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-6)


def test_lambda_returns_known_answers():
    g = torch.Generator().manual_seed(0)
    r, v, c = torch.randn(4, 6, generator=g), torch.randn(4, 7, generator=g), (torch.rand(4, 6, generator=g) > 0.2).float()
    gamma = 0.9
    # lam = 0: one-step targets; STORM's code bootstraps from the current state's value, TD(lambda) from
    # the next one
    assert torch.allclose(lambda_returns(r, v, c, gamma, 0.0, "next"), r + gamma * c * v[:, 1:])
    assert torch.allclose(lambda_returns(r, v, c, gamma, 0.0), r + gamma * c * v[:, :-1])
    assert torch.allclose(lambda_returns(r, v, c, gamma, 0.0, "current"), r + gamma * c * v[:, :-1])
    # STORM's recursion written out: R_k = r_k + g c_k (1 - l) V_k + g c_k l R_{k+1}, R_H = V_H
    lam = 0.7
    ref = torch.zeros(4, 7)
    ref[:, -1] = v[:, -1]
    for k in reversed(range(6)):
        ref[:, k] = r[:, k] + gamma * c[:, k] * (1 - lam) * v[:, k] + gamma * c[:, k] * lam * ref[:, k + 1]
    assert torch.allclose(lambda_returns(r, v, c, gamma, lam), ref[:, :-1], atol=1e-5)
    with pytest.raises(ValueError, match="bootstrap"):
        lambda_returns(r, v, c, gamma, lam, "previous")
    # lam = 1: discounted Monte Carlo sum bootstrapped with V_H, cut at terminations
    mc = torch.zeros(4)
    disc = torch.ones(4)
    for k in range(6):
        mc = mc + disc * r[:, k]
        disc = disc * gamma * c[:, k]
    mc = mc + disc * v[:, -1]
    for boot in ("current", "next"):  # lam = 1 does not use the intermediate values
        assert torch.allclose(lambda_returns(r, v, c, gamma, 1.0, boot)[:, 0], mc, atol=1e-5)


def test_return_norm_percentiles():
    n = ReturnNorm(decay=0.0)
    assert n.update(torch.linspace(0, 100, 1001)) == pytest.approx(90.0, abs=1e-3)
    assert n.update(torch.zeros(10)) == 1.0  # spread below 1: no scaling up


def test_return_norm_ema_starts_at_zero_like_storm():
    """STORM's EMAScalar starts at 0: after one update the bounds are (1 - decay) * percentile."""
    n = ReturnNorm(decay=0.99)
    assert n.scale == 1.0
    n.update(torch.linspace(0, 1000, 1001))  # P5 = 50, P95 = 950
    assert n.low == pytest.approx(0.5, abs=1e-3) and n.high == pytest.approx(9.5, abs=1e-3)
    assert n.scale == pytest.approx(9.0, abs=1e-3)


def test_psnr():
    assert float(psnr(np.array(1e-4))) == pytest.approx(40.0)


# ------------------------------------------------------------------------------------- environments
def test_minatar_wrapper_shapes():
    env = make_env("minatar:breakout", Config(minatar_scale=2))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 20, 20) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    obs, r, term, trunc, _ = env.step(1)
    assert obs.shape == (3, 20, 20) and isinstance(r, float)
    env = make_env("minatar:space_invaders", Config(minatar_scale=3))
    assert env.reset(seed=0)[0].shape == (3, 30, 30)


def test_atari_wrapper_shapes():
    env = make_env("atari:Pong", Config())
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 64, 64) and obs.dtype == np.uint8 and "life_loss" in info
    obs, *_ , info = env.step(0)
    assert obs.shape == (3, 64, 64) and info["life_loss"] is False


def test_atari_life_loss_flag():
    env = make_env("atari:Breakout", Config())
    env.reset(seed=0)
    flags, lives = [], []
    for _ in range(400):
        _, _, term, trunc, info = env.step(1)
        flags.append(info["life_loss"])
        lives.append(info["lives"])
        if term or trunc:
            break
    drops = int(sum(np.diff(lives) < 0))
    assert drops >= 1 and sum(flags) == drops


def test_dmc_missing_names_extra():
    try:
        import dm_control  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"\[dmc\]"):
            make_env("dmc:cartpole-swingup", Config())
    else:
        env = make_env("dmc:cartpole-swingup", Config())
        obs, _ = env.reset(seed=0)
        assert obs.shape == (3, 64, 64)


def test_continuous_actions_through_state_mixer():
    wm = build_world_model(TINY, (3, 20, 20), 2, True, "maskgit")
    obs, _, rew, term = _batch()
    act = torch.rand(4, 12, 2) * 2 - 1
    loss, _ = wm.loss(obs, act, rew, term, torch_gen(0, "c"))
    assert torch.isfinite(loss)
    im = wm.imagine(obs[:, :4], act[:, :4], 3, actions=act[:, 4:7], generator=torch_gen(0, "d"))
    assert im["reward"].shape == (4, 3)


# ---------------------------------------------------------------------------------- training works
@pytest.mark.parametrize("prior", ["mlp", "maskgit"])
def test_short_run_lowers_world_model_loss_on_fixed_batch(prior):
    env = make_env("minatar:breakout", TINY)
    rep = Replay((3, 20, 20), capacity=300)
    collect(env, rep, 300, np.random.default_rng(0))
    batch = rep.sample(np.random.default_rng(1), 4, 12)
    wm = build_world_model(dataclasses.replace(TINY, wm_lr=2e-3), (3, 20, 20), 3, False, prior)

    def eval_loss():
        wm.train()
        with torch.no_grad():
            return np.mean([wm.loss(*batch, torch_gen(0, "eval", i))[0].item() for i in range(3)])

    before = eval_loss()
    for i in range(60):
        loss, _ = wm.loss(*batch, torch_gen(0, "train", i))
        wm.opt.zero_grad(), loss.backward(), wm.opt.step()
    after = eval_loss()
    assert after < 0.7 * before, (before, after)


def test_run_tiny_end_to_end(tmp_path):
    cfg = dataclasses.replace(TINY, dataset_steps=400, wm_updates=5, eval_context=4, eval_horizon=5,
                              eval_sequences=4, agent_env_steps=120, warmup_steps=60, pretrain_wm_updates=2,
                              train_wm_every=20, train_agent_every=20, agent_prior="mlp")
    res = run(cfg, progress=False)
    s = res["summary"]
    assert set(s) >= {"mlp", "maskgit", "baselines", "agent", "diff"}
    assert {"steps1_prior_nll", "steps8_prior_nll", "prior_nll_se"} <= set(s["maskgit"])
    for p in ("mlp", "maskgit"):
        v = res["comparison"]["priors"][p]["video"]
        assert len(v["mse_per_step"]) == 5 and len(v["examples"]["pred"][0]) == 5
        assert 0 <= s[p]["token_accuracy"] <= 1 and s[p]["token_perplexity"] >= 1
    assert s["agent"]["updates"] == 3
    from workbench.results import record

    record(res, cfg, tmp_path, notebook_id="git_storm", print_summary=False)
    assert (tmp_path / "results.json").exists()
