"""GIT-STORM: the branching catch env, exact MaskGIT decoding likelihoods, the number of decoding steps,
and the pieces matched to STORM's / the authors' code (slow-critic target, feed-forward, decoder stem,
linear prior head in the Atari preset, continuous actor)."""
import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch

from workbench.git_storm import Config, atari100k_config, make_env, paper_model_config
from workbench.git_storm.agent import ActorCritic, lambda_returns
from workbench.git_storm.core import aggregate_seeds, build_world_model, compare_priors, mean_se
from workbench.git_storm.envs import BranchCatch, catch_frame_valid
from workbench.git_storm.nets import CausalTransformer, Decoder
from workbench.git_storm.priors import MLPPrior, MaskGITPrior, build_prior, decoding

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------ env
def test_catch_dynamics_are_branching_with_the_stated_probabilities():
    env = BranchCatch(size=5, paddle=2, balls=1000)
    env.reset(seed=0)
    moves, spawns = [], []
    for _ in range(6000):
        r0, c0 = env.ball
        env.step(0)
        r1, c1 = env.ball
        if r0 == 4:
            assert r1 == 0
            spawns.append(c1)
        elif 0 < c0 < 4:  # away from the walls: -1, 0, +1 equally likely
            moves.append(c1 - c0)
            assert r1 == r0 + 1
    counts = np.bincount(np.array(moves) + 1, minlength=3) / len(moves)
    assert np.allclose(counts, 1 / 3, atol=0.03)
    assert np.allclose(np.bincount(spawns, minlength=5) / len(spawns), 0.2, atol=0.04)


def test_catch_reward_termination_and_frames():
    env = BranchCatch(size=5, paddle=2, balls=2, scale=2)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (3, 10, 10) and obs.dtype == np.uint8 and catch_frame_valid(obs, 2, 2)
    rewards, term, steps = [], False, 0
    while not term:
        r, c = env.ball
        obs, rew, term, trunc, _ = env.step(0)
        steps += 1
        if r == 3:  # landed this step: +1 iff the paddle covers the column
            assert rew == (1.0 if env.pad <= env.ball[1] < env.pad + 2 else -1.0)
            rewards.append(rew)
        else:
            assert rew == 0.0
    assert len(rewards) == 2 and steps == 4 + 5
    with pytest.raises(ValueError, match="action"):
        env.step(3)
    with pytest.raises(ValueError, match="drift"):
        BranchCatch(drift=(0.5, 0.5, 0.5))


def test_frame_check_rejects_two_balls_and_no_ball():
    env = BranchCatch(size=5, paddle=2)
    obs, _ = env.reset(seed=1)
    assert catch_frame_valid(obs, 2)
    two = obs.copy()
    r, c = env.ball
    two[:, (r + 2) % 4, (c + 2) % 5] = 255
    none = obs.copy()
    none[:, r, c] = 0
    assert not catch_frame_valid(two, 2) and not catch_frame_valid(none, 2)


# ------------------------------------------------------------------------------ MaskGIT decoding
def _tiny_prior(G=3, K=3, seed=0):
    torch.manual_seed(seed)
    return MaskGITPrior(d_model=G * 2, groups=G, classes=K, embed=16, layers=1, heads=2, d_ff=16, unimix=0.0).eval()


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_maskgit_log_prob_is_a_normalised_distribution_of_the_sampler(steps):
    """Exact enumeration: for a fixed chunk order the draft decoder's probabilities over all K^G token
    tuples sum to 1, and its samples have those frequencies."""
    G, K = 3, 3
    prior = _tiny_prior(G, K)
    h = torch.randn(1, G * 2)
    tuples = torch.tensor(list(itertools.product(range(K), repeat=G)))  # (27, G)
    # one chunk order for every tuple: a fresh generator with the same seed for each
    lp = torch.stack([prior.log_prob(h, t[None], torch.Generator().manual_seed(7), steps=steps)[0] for t in tuples])
    assert float(lp.exp().sum()) == pytest.approx(1.0, abs=1e-5)
    if steps == 1:  # all-masked: the product of the one-shot marginals
        one = prior.logits(h)[0]  # (G, K)
        ref = torch.stack([one[torch.arange(G), t].sum() for t in tuples])
        assert torch.allclose(lp, ref, atol=1e-5)


def test_maskgit_sampler_frequencies_match_log_prob():
    """G chunks, one order: samples drawn with the order from the same generator state match the
    enumerated probabilities (chi-square-free check: total variation < 0.03 with 20000 draws)."""
    G, K = 2, 3
    prior = _tiny_prior(G, K, seed=1)
    prior.draft_steps, prior.revise_rounds = G, 0
    h = torch.randn(1, G * 2)
    tuples = torch.tensor(list(itertools.product(range(K), repeat=G)))
    # average over the two orders (the sampler draws the order at random)
    probs = torch.zeros(len(tuples))
    for order_seed in range(64):
        probs += torch.stack([prior.log_prob(h, t[None], torch.Generator().manual_seed(order_seed), steps=G)[0]
                              for t in tuples]).exp() / 64
    s = prior.sample(h.expand(20000, -1), torch.Generator().manual_seed(3)).argmax(-1)
    freq = torch.stack([((s == t).all(-1)).float().mean() for t in tuples])
    assert float((freq - probs).abs().sum() / 2) < 0.03


def test_mlp_log_prob_is_factorised():
    prior = MLPPrior(8, 4, 5, 16, 1, 0.01)
    h, idx = torch.randn(6, 8), torch.randint(0, 5, (6, 4))
    ref = prior.logits(h).gather(-1, idx[..., None]).squeeze(-1).sum(-1)
    assert torch.allclose(prior.log_prob(h, idx), ref)


def test_decoding_context_restores_and_validates():
    prior = _tiny_prior()
    with decoding(prior, draft_steps=3, revise_rounds=0):
        assert prior.draft_steps == 3 and prior.revise_rounds == 0
    assert prior.draft_steps == 1 and prior.revise_rounds == 1
    with pytest.raises(ValueError, match="draft_steps"):
        with decoding(prior, draft_steps=9):
            pass
    with pytest.raises(ValueError, match="draft_steps"):
        MaskGITPrior(d_model=6, groups=3, classes=3, embed=16, layers=1, heads=2, d_ff=16, unimix=0.0, draft_steps=4)


def test_cpu_default_decodes_in_several_steps_and_paper_preset_keeps_public_setting():
    assert Config().draft_steps > 1 and max(Config().decode_scan) > 1 and 1 in Config().decode_scan
    a = atari100k_config()
    assert (a.draft_steps, a.revise_steps, a.revise_rounds) == (1, 1, 1)


# ------------------------------------------------------------------------------- STORM matches
def test_atari_preset_prior_head_is_linear_like_storm():
    for cfg in (atari100k_config(), paper_model_config()):
        head = build_prior("mlp", cfg)
        assert isinstance(head.net, torch.nn.Linear) and head.net.in_features == 512


def test_sequence_model_feed_forward_is_2d_relu_like_storm():
    tr = CausalTransformer(64, 2, 4, 32)
    for blk in tr.blocks:
        lin1, act, lin2 = blk.ff
        assert lin1.out_features == 128 and isinstance(act, torch.nn.ReLU) and lin2.in_features == 128
    wm = build_world_model(Config(), (3, 10, 10), 3, False, "maskgit")
    assert wm.transformer.blocks[0].ff[0].out_features == 2 * Config().d_model
    assert isinstance(wm.prior.blocks[0].ff[1], torch.nn.GELU)  # the MaskGIT transformer keeps GELU


def test_decoder_stem_is_batchnorm2d_over_channels():
    """STORM's stem normalises each channel over batch and space: with a constant bias in one channel's
    linear outputs the stem's output for that channel has zero mean over (N, S, S) in training mode."""
    dec = Decoder(16, 3, 4, (8, 16))
    bn = [m for m in dec.net if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))][0]
    assert isinstance(bn, torch.nn.BatchNorm2d) and bn.num_features == 16
    dec.train()
    x = dec.fc(torch.randn(32, 16)).view(-1, 16, 4, 4)
    y = dec.net[1](dec.net[0](x))  # BN + ReLU of the stem
    pre = dec.net[0](x)
    assert torch.allclose(pre.mean((0, 2, 3)), torch.zeros(16), atol=1e-5)
    assert y.shape == (32, 16, 4, 4)


def test_slow_critic_regulariser_targets_slow_lambda_returns():
    """STORM regularises the critic towards lambda-returns computed with the slow critic's values, not
    towards the slow values themselves: with a zero-initialised slow critic (values 0) and rewards of 1,
    the regulariser's target is the discounted reward sum, so its loss differs from a target of 0."""
    cfg = dataclasses.replace(Config(), ac_hidden=16, reward_bins=41)
    torch.manual_seed(0)
    ac = ActorCritic(8, 3, False, cfg)
    for p in ac.slow_critic.parameters():
        torch.nn.init.zeros_(p)
    B, H = 4, 5
    feat, acts = torch.randn(B, H + 1, 8), torch.randint(0, 3, (B, H))
    rew, cont = torch.ones(B, H), torch.ones(B, H)
    logits = ac.critic(feat).detach()
    slow_v = ac.twohot.decode(ac.slow_critic(feat)).detach()
    assert torch.allclose(slow_v, torch.zeros_like(slow_v), atol=1e-5)
    v = ac.twohot.decode(logits)
    ret = lambda_returns(rew, v, cont, cfg.gamma, cfg.lam)
    slow_ret = lambda_returns(rew, slow_v, cont, cfg.gamma, cfg.lam)
    expected_value = ac.twohot.loss(logits[:, :-1], ret)
    expected_reg = ac.twohot.loss(logits[:, :-1], slow_ret)
    wrong_reg = ac.twohot.loss(logits[:, :-1], slow_v[:, :-1])
    captured = {}
    orig = ac.twohot.loss

    def spy(lg, target):
        out = orig(lg, target)
        captured.setdefault("calls", []).append(out.detach())
        return out

    ac.twohot.loss = spy
    ac.update(feat, acts, rew, cont)
    value_loss, reg = captured["calls"]
    assert float(value_loss) == pytest.approx(float(expected_value), rel=1e-4)
    assert float(reg) == pytest.approx(float(expected_reg), rel=1e-4)
    assert abs(float(reg) - float(wrong_reg)) > 0.1


def test_continuous_actor_matches_authors_parameterisation():
    cfg = dataclasses.replace(Config(), ac_hidden=16)
    torch.manual_seed(0)
    ac = ActorCritic(8, 2, True, cfg)
    last = ac.actor[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    d = ac.dist(torch.randn(5, 8))
    # raw outputs 0: mean tanh(0) = 0, std 2 sigmoid(0) + 0.1 = 1.1
    assert torch.allclose(d.base_dist.loc, torch.zeros(5, 2)) and torch.allclose(d.base_dist.scale, torch.full((5, 2), 1.1))
    a = ac.act(torch.randn(2000, 8), torch.Generator().manual_seed(0))
    assert float(a.abs().max()) < 1.0 and float(a.abs().max()) > 0.999  # clipped inside (-1, 1)


# --------------------------------------------------------------------------------- comparison
def test_mean_se_and_paired_differences():
    assert mean_se([2.0]) == (2.0, pytest.approx(float("nan"), nan_ok=True))
    per = [{"mlp": {"x": 1.0}, "maskgit": {"x": 2.0}}, {"mlp": {"x": 3.0}, "maskgit": {"x": 3.0}}]
    agg = aggregate_seeds(per)
    assert agg["mlp"]["x"] == 2.0 and agg["mlp"]["x_se"] == pytest.approx(1.0)
    assert agg["diff"]["x"] == 0.5 and agg["diff"]["x_se"] == pytest.approx(0.5) and agg["seeds"] == 2


def test_compare_priors_on_catch_small():
    cfg = Config(seed=2, dataset_steps=300, wm_updates=3, groups=8, classes=8, d_model=32, mg_embed=16,
                 mg_mlp=32, draft_steps=4, revise_steps=4, batch_size=4, batch_length=8, eval_context=4,
                 eval_horizon=4, eval_sequences=4, decode_scan=(1, 8), agent_updates=2, agent_eval_episodes=1,
                 imagine_batch_size=4, horizon=4, imagine_context=4)
    out = compare_priors(cfg, progress=False)
    for p in ("mlp", "maskgit"):
        v = out["priors"][p]["video"]
        assert v["prior_nll"] > 0 and 0 <= v["valid"] <= 1 and 0 <= v["valid_one_step"] <= 1
        assert len(out["priors"][p]["agent"]["returns"]) == 1
    assert set(out["priors"]["maskgit"]["decode_scan"]) == {1, 8}
    with pytest.raises(ValueError, match="decode_scan"):
        compare_priors(dataclasses.replace(cfg, decode_scan=(16,)), progress=False)
