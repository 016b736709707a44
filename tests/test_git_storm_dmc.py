"""DeepMind Control from pixels through workbench.git_storm.envs (real dm-control + MuJoCo rendering):
observation shape/dtype, action bounds and rescaling, reward range, action repeat, truncation at the
suite's time limit, determinism under a seed, and short world-model updates on DMC batches with each
continuous-action state mixer.

Skipped when dm_control is not installed (the optional `dmc` extra). Rendering is headless: MUJOCO_GL
defaults to egl (set before mujoco is imported); a machine without a working EGL or OSMesa fails here
with MuJoCo's error rather than skipping.
"""
import dataclasses
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("dm_control", reason="dm_control not installed: pip install -e '.[dmc]' "
                    "(dm-control with mujoco==3.17.0)")

from workbench.git_storm import Config, make_env  # noqa: E402
from workbench.git_storm.core import Replay, build_world_model, collect, env_info, torch_gen  # noqa: E402
from workbench.git_storm.world_model import MIXERS  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fixture in tests/conftest.py


CFG = Config()  # paper setting: 64x64 pixels, action repeat 2


def _rollout(env, actions, seed):
    obs, _ = env.reset(seed=seed)
    frames, rewards = [obs], []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        frames.append(obs)
        rewards.append(r)
    return np.stack(frames), np.array(rewards)


def test_walker_shapes_spaces_and_reward_range():
    env = make_env("dmc:walker-walk", CFG, seed=0)
    assert env.observation_space.shape == (3, 64, 64) and env.observation_space.dtype == np.uint8
    space = env.action_space
    assert space.shape == (6,) and space.dtype == np.float32
    assert np.all(space.low == -1) and np.all(space.high == 1)
    assert env_info(env) == ((3, 64, 64), 6, True)
    rng = np.random.default_rng(0)
    frames, rewards = _rollout(env, rng.uniform(-1, 1, (30, 6)).astype(np.float32), seed=0)
    assert frames.shape == (31, 3, 64, 64) and frames.dtype == np.uint8
    assert all(env.observation_space.contains(f) for f in frames)
    assert frames.std() > 5  # a rendered scene, not a blank frame
    assert np.all((rewards >= 0) & (rewards <= CFG.dmc_action_repeat))  # suite rewards in [0, 1] per physics step
    assert rewards.max() > 0  # walker-walk pays for standing height from the start


def test_action_repeat_advances_physics_and_bounds_clip():
    env = make_env("dmc:cartpole-swingup", CFG, seed=1)
    inner = env.unwrapped
    assert env.action_space.shape == (1,)
    env.reset(seed=1)
    dt = inner.env.control_timestep()
    for n in range(1, 6):
        env.step(np.zeros(1, np.float32))
        assert inner.env.physics.data.time == pytest.approx(n * CFG.dmc_action_repeat * dt)
    # actions outside [-1, 1] are clipped to the bounds: same frames and rewards as the bound itself
    f_big, r_big = _rollout(env, [np.array([5.0], np.float32)] * 4, seed=2)
    f_one, r_one = _rollout(env, [np.array([1.0], np.float32)] * 4, seed=2)
    assert np.array_equal(f_big, f_one) and np.array_equal(r_big, r_one)
    f_neg, _ = _rollout(env, [np.array([-1.0], np.float32)] * 4, seed=2)
    assert not np.array_equal(f_neg[-1], f_one[-1])  # the action moves the cart
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(2, np.float32))


def test_same_seed_same_frames_different_seed_differs():
    acts = np.random.default_rng(3).uniform(-1, 1, (12, 6)).astype(np.float32)
    env_a = make_env("dmc:walker-walk", CFG, seed=0)
    env_b = make_env("dmc:walker-walk", CFG, seed=99)  # construction seed is overridden by reset(seed)
    fa, ra = _rollout(env_a, acts, seed=7)
    fb, rb = _rollout(env_b, acts, seed=7)
    assert np.array_equal(fa, fb) and np.array_equal(ra, rb)
    fc, _ = _rollout(env_b, acts, seed=8)
    assert not np.array_equal(fa[0], fc[0])  # walker's initial pose is random per seed


def test_time_limit_is_truncation_not_termination():
    # the suite's 1000 physics steps end the episode; action repeat 8 -> 125 env steps
    cfg = dataclasses.replace(CFG, dmc_action_repeat=8, dmc_shadows_reflections=False)
    env = make_env("dmc:cartpole-swingup", cfg, seed=0)
    env.reset(seed=0)
    flags = [env.step(np.zeros(1, np.float32))[2:4] for _ in range(125)]
    assert all(f == (False, False) for f in flags[:-1])
    assert flags[-1] == (False, True)


def test_unknown_task_raises():
    with pytest.raises(ValueError, match="unknown DMC task"):
        make_env("dmc:walker-fly", CFG)
    with pytest.raises(ValueError, match="dmc spec"):
        make_env("dmc:walker", CFG)


@pytest.fixture(scope="module")
def walker_replay():
    env = make_env("dmc:walker-walk", CFG, seed=0)
    obs_shape, action_dim, continuous = env_info(env)
    rep = Replay(obs_shape, (action_dim,), np.float32, capacity=40)
    collect(env, rep, 40, np.random.default_rng(0))
    return rep


@pytest.mark.parametrize("mixer", MIXERS)
def test_world_model_updates_on_dmc_batches(walker_replay, mixer):
    rep = walker_replay
    assert rep.action.dtype == np.float32 and np.abs(rep.action[:rep.n]).max() <= 1
    cfg = dataclasses.replace(CFG, enc_channels=(8, 16, 32), groups=8, classes=8, d_model=32, n_layers=1,
                              n_heads=4, mlp_hidden=32, mg_embed=16, mg_layers=1, mg_heads=2, mg_mlp=32,
                              state_mixer=mixer, wm_lr=1e-3)
    wm = build_world_model(cfg, (3, 64, 64), 6, True, "maskgit")
    rng = np.random.default_rng(1)
    before = {k: v.detach().clone() for k, v in wm.mixer.state_dict().items()}
    for i in range(3):
        obs, act, rew, term = rep.sample(rng, 2, 8)
        assert obs.shape == (2, 8, 3, 64, 64) and act.shape == (2, 8, 6)
        loss, m = wm.loss(obs, act, rew, term, torch_gen(0, "dmc", i))
        assert torch.isfinite(loss) and m["recon"] > 0
        wm.opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None for p in wm.mixer.parameters())
        wm.opt.step()
    changed = [k for k, v in wm.mixer.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the state mixer did not train"
    obs, act, _, _ = rep.sample(rng, 2, 8)
    im = wm.imagine(obs[:, :4], act[:, :4], 4, actions=act[:, 4:], generator=torch_gen(0, "dmc_im"), decode=True)
    assert im["frames"].shape == (2, 5, 3, 64, 64) and im["reward"].shape == (2, 4)


def test_large_seeds_accepted():
    # run() derives 64-bit seeds; the suite takes numpy seeds < 2**32
    env = make_env("dmc:cartpole-swingup", CFG, seed=2 ** 40 + 5)
    obs, _ = env.reset(seed=2 ** 63 - 1)
    assert obs.shape == (3, 64, 64)


def test_run_end_to_end_on_dmc():
    from workbench.git_storm import run

    cfg = Config(env="dmc:cartpole-swingup", enc_channels=(8, 16, 32), groups=8, classes=8, d_model=32,
                 n_layers=1, n_heads=4, mlp_hidden=32, mg_embed=16, mg_layers=1, mg_heads=2, mg_mlp=32,
                 batch_size=4, batch_length=12, ac_hidden=32, imagine_batch_size=8, horizon=6,
                 imagine_context=4, state_mixer="concat+attn", mixer_heads=1, dmc_shadows_reflections=False,
                 dataset_steps=120, wm_updates=3, eval_context=4, eval_horizon=5, eval_sequences=4,
                 agent_env_steps=60, warmup_steps=40, pretrain_wm_updates=2, train_wm_every=10,
                 train_agent_every=10, decode_scan=(1, 8), agent_prior="maskgit")
    res = run(cfg, progress=False)
    s = res["summary"]
    for p in ("mlp", "maskgit"):
        assert len(res["comparison"]["priors"][p]["video"]["mse_per_step"]) == 5
        assert 0 <= s[p]["token_accuracy"] <= 1 and s[p]["token_perplexity"] >= 1
    assert s["agent"]["updates"] == 2


def test_rendering_then_an_optimizer_in_a_fresh_process_does_not_crash():
    # a DMC frame rendered (GL loaded) before torch first imports triton (inside Adam) segfaulted the
    # process; a fresh interpreter is needed because this session may have imported triton already
    import subprocess
    import sys

    code = ("import os\nos.environ.setdefault('MUJOCO_GL', 'egl')\n"
            "from workbench.git_storm import Config, make_env\n"
            "env = make_env('dmc:cartpole-swingup', Config(dmc_shadows_reflections=False), seed=0)\n"
            "obs, _ = env.reset(seed=0)\nassert obs.shape == (3, 64, 64)\n"
            "import torch\ntorch.optim.Adam([torch.nn.Parameter(torch.zeros(2))])\nprint('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), (r.returncode, r.stderr[-2000:])
