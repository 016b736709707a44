"""State mixer variants of workbench.git_storm (concat, concat+attn, z+attn): shapes, a hand-computed
reference of the attention, causality over time, gradients to both the latent and the action inputs,
step-by-step cache == full pass, and KV-cached imagination == uncached with every mixer and prior."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from workbench.git_storm import Config
from workbench.git_storm.core import build_world_model, torch_gen
from workbench.git_storm.world_model import MIXERS, StateMixer


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in tests/conftest.py


TINY = Config(minatar_scale=2, enc_channels=(8, 16), groups=8, classes=8, d_model=32, n_layers=2, n_heads=4,
              mlp_hidden=32, mg_embed=16, mg_layers=2, mg_heads=2, mg_mlp=32, batch_size=4, batch_length=12)
LAT, A, D = 64, 4, 32  # latent width G*K, continuous action size, token width


def _mixer(kind, seed=0, **kw):
    torch.manual_seed(seed)
    return StateMixer(LAT, A, D, kind, **kw).eval()


def _inputs(B=3, T=6, seed=1, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    z = F.one_hot(torch.randint(0, 8, (B, T, 8), generator=g), 8).float().flatten(-2)  # (B, T, 64)
    a = torch.rand(B, T, A, generator=g) * 2 - 1  # (B, T, A)
    return z.requires_grad_(requires_grad), a.requires_grad_(requires_grad)


@pytest.mark.parametrize("kind", MIXERS)
def test_mixer_shapes(kind):
    z, a = _inputs()
    m = _mixer(kind)
    tok = m(z, a)
    assert tok.shape == (3, 6, D) and torch.isfinite(tok).all()
    tok1, cache = m.forward_cached(z[:, :1], a[:, :1])
    assert tok1.shape == (3, 1, D)
    if kind == "concat":
        assert cache is None
    else:  # (k, v): (B, heads, T, width / heads), width = action size by default
        assert cache[0].shape == cache[1].shape == (3, 2, 1, A // 2)


def test_mixer_bad_config_raises():
    with pytest.raises(ValueError, match="unknown state mixer"):
        StateMixer(LAT, A, D, "sum")
    with pytest.raises(ValueError, match="divisible by mixer_heads"):
        StateMixer(LAT, 3, D, "z+attn", heads=2)  # width 3 (action size) with 2 heads
    StateMixer(LAT, 3, D, "z+attn", heads=2, attn_dim=8)  # explicit width fixes it
    with pytest.raises(ValueError, match="unknown state mixer"):
        build_world_model(dataclasses.replace(TINY, state_mixer="film"), (3, 20, 20), 3, False, "mlp")


@pytest.mark.parametrize("kind", ["concat+attn", "z+attn"])
def test_attention_mixer_matches_hand_computed_reference(kind):
    """Token t = stem(out(sum_{s<=t} softmax_s(q_t . k_s / sqrt(dh)) v_s)), per head, written out with
    explicit loops over steps and heads."""
    m = _mixer(kind)
    z, a = _inputs(B=2, T=5)
    x = torch.cat([z, a], -1) if kind == "concat+attn" else z
    with torch.no_grad():
        q = m.q(m.q_norm(a))  # (B, T, width)
        k, v = m.kv(m.kv_norm(x)).chunk(2, -1)  # (B, T, width) each
        h, dh = m.h, m.dh
        ref = torch.zeros(2, 5, h * dh)
        for t in range(5):
            for j in range(h):
                sl = slice(j * dh, (j + 1) * dh)
                scores = torch.stack([(q[:, t, sl] * k[:, s, sl]).sum(-1) for s in range(t + 1)], -1) / dh ** 0.5
                w = torch.softmax(scores, -1)  # (B, t+1)
                ref[:, t, sl] = sum(w[:, s:s + 1] * v[:, s, sl] for s in range(t + 1))
        expected = m.net(m.out(ref))
        assert torch.allclose(m(z, a), expected, atol=1e-5)
        # one step: a single key, the weights are 1 and the attention is out(v(LN(x_0)))
        assert torch.allclose(m(z[:, :1], a[:, :1]), m.net(m.out(v[:, :1])), atol=1e-5)


@pytest.mark.parametrize("kind", MIXERS)
def test_mixer_is_causal_over_time(kind):
    m = _mixer(kind)
    z, a = _inputs()
    base = m(z, a)
    z2, a2 = z.clone(), a.clone()
    z2[:, 4:] = z2[:, 4:].roll(1, -1)  # change the future latents and actions
    a2[:, 4:] = -a2[:, 4:]
    out = m(z2, a2)
    assert torch.allclose(out[:, :4], base[:, :4], atol=1e-6)  # the past is untouched
    assert not torch.allclose(out[:, 4:], base[:, 4:], atol=1e-3)


@pytest.mark.parametrize("kind", MIXERS)
def test_gradient_reaches_latent_and_action(kind):
    m = _mixer(kind).train()
    z, a = _inputs(requires_grad=True)
    w = torch.randn(3, 6, D, generator=torch.Generator().manual_seed(2))
    (m(z, a) * w).sum().backward()
    assert z.grad.abs().sum(-1).min() > 0  # every step's latent matters
    ga = a.grad.abs().sum(-1)  # (B, T)
    assert ga[:, 1:].min() > 0
    if kind == "z+attn":
        # the action enters only through the attention weights; with one key (step 0) they are constant
        assert torch.equal(ga[:, 0], torch.zeros(3))
    else:
        assert ga[:, 0].min() > 0


@pytest.mark.parametrize("kind", MIXERS)
def test_mixer_cache_equals_full_pass(kind):
    m = _mixer(kind)
    z, a = _inputs(T=7)
    full = m(z, a)
    out, cache = m.forward_cached(z[:, :3], a[:, :3])
    steps = [out]
    for t in range(3, 7):
        o, cache = m.forward_cached(z[:, t:t + 1], a[:, t:t + 1], cache)
        steps.append(o)
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)


@pytest.mark.parametrize("prior", ["mlp", "maskgit"])
@pytest.mark.parametrize("kind", MIXERS)
def test_kv_cached_imagination_equals_uncached_with_each_mixer(kind, prior):
    cfg = dataclasses.replace(TINY, state_mixer=kind)
    wm = build_world_model(cfg, (3, 20, 20), A, True, prior)
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (3, 4, 3, 20, 20), generator=g, dtype=torch.uint8)
    act = torch.rand(3, 4, A, generator=g) * 2 - 1
    pol_w = torch.randn(cfg.groups * cfg.classes + cfg.d_model, A, generator=g)

    def make_policy(gen):  # continuous policy: tanh of a linear map plus seeded noise
        return lambda z, h: torch.tanh(torch.cat([z, h], -1) @ pol_w + 0.3 * torch.randn(z.shape[0], A, generator=gen))

    outs = []
    for cache in (True, False):
        gen = torch.Generator().manual_seed(5)
        outs.append(wm.imagine(obs, act, 8, policy=make_policy(gen), generator=gen, use_cache=cache))
    a, b = outs
    assert torch.equal(a["z"], b["z"])
    for k in ("actions", "h", "reward", "term_logit"):
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    assert a["actions"].shape == (3, 8, A)


@pytest.mark.parametrize("kind", MIXERS)
def test_world_model_loss_trains_mixer_parameters(kind):
    cfg = dataclasses.replace(TINY, state_mixer=kind)
    wm = build_world_model(cfg, (3, 20, 20), A, True, "maskgit")
    g = torch.Generator().manual_seed(3)
    obs = torch.randint(0, 256, (4, 12, 3, 20, 20), generator=g, dtype=torch.uint8)
    act = torch.rand(4, 12, A, generator=g) * 2 - 1
    rew, term = torch.rand(4, 12, generator=g), torch.zeros(4, 12)
    loss, _ = wm.loss(obs, act, rew, term, torch_gen(0, "mix"))
    loss.backward()
    for name, p in wm.mixer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
