"""World-model throughput of workbench.git_storm: updates/s and imagined steps/s, MLP vs MaskGIT prior,
at the notebook size and at the paper size (32x32 latent, 512-wide 2-layer transformer, 64x64 frames,
batch 16 x 64), all measured in one run so the ratios are comparable on a shared machine.

Also the KV-cache speed-up of imagination (cached vs re-running the whole sequence each step), the cost
of the state-mixer variants (concat, concat+attn, z+attn) with 6-dim continuous actions at the notebook
size, and, when dm-control is installed, DeepMind Control 64x64 env steps/s (action repeat 2) with and
without MuJoCo's shadows and reflections.
Paper size on CPU uses few iterations (``--paper-updates``); the numbers are CPU figures, not GPU.

    python benchmarks/world_model.py [--threads 1] [--paper-updates 2] [--skip-paper] [--skip-dmc]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from workbench.git_storm import Config, paper_model_config
from workbench.git_storm.core import build_world_model, torch_gen


def _actions(n_actions, B, T, g, continuous=False):
    if continuous:
        return torch.rand(B, T, n_actions, generator=g) * 2 - 1  # (B, T, A) in [-1, 1]
    return torch.randint(0, n_actions, (B, T), generator=g)  # (B, T) ids


def _data(cfg, side, n_actions, B, T, seed=0, continuous=False):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 256, (B, T, 3, side, side), generator=g, dtype=torch.uint8)
    act = _actions(n_actions, B, T, g, continuous)
    rew = torch.randn(B, T, generator=g)
    term = (torch.rand(B, T, generator=g) < 0.01).float()
    return obs, act, rew, term


def measure(cfg: Config, side: int, prior: str, updates: int, imagine_batch: int, horizon: int,
            n_actions: int = 6, uncached: bool = True, continuous: bool = False) -> dict:
    wm = build_world_model(cfg, (3, side, side), n_actions, continuous, prior)
    batch = _data(cfg, side, n_actions, cfg.batch_size, cfg.batch_length, continuous=continuous)
    gen = torch_gen(0, "bench", prior)

    def step():
        loss, _ = wm.loss(*batch, gen)
        wm.opt.zero_grad(set_to_none=True)
        loss.backward()
        wm.opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(updates):
        step()
    upd_s = (time.perf_counter() - t0) / updates
    ctx_obs, ctx_act, _, _ = _data(cfg, side, n_actions, imagine_batch, cfg.imagine_context, seed=1,
                                   continuous=continuous)
    acts = _actions(n_actions, imagine_batch, horizon, torch.Generator().manual_seed(2), continuous)
    wm.imagine(ctx_obs, ctx_act, 2, actions=acts[:, :2], generator=gen)  # warm-up
    t0 = time.perf_counter()
    wm.imagine(ctx_obs, ctx_act, horizon, actions=acts, generator=gen, use_cache=True)
    cached_s = time.perf_counter() - t0
    out = {"updates_per_s": 1 / upd_s, "imagined_steps_per_s": imagine_batch * horizon / cached_s}
    if uncached:
        t0 = time.perf_counter()
        wm.imagine(ctx_obs, ctx_act, horizon, actions=acts, generator=gen, use_cache=False)
        out["uncached_imagined_steps_per_s"] = imagine_batch * horizon / (time.perf_counter() - t0)
    return out


def measure_dmc(steps: int = 60) -> dict:
    """DMC walker-walk env steps/s (64x64, action repeat 2) with and without shadows/reflections."""
    from workbench.git_storm import make_env

    out = {}
    for shadows in (True, False):
        env = make_env("dmc:walker-walk", Config(dmc_shadows_reflections=shadows), seed=0)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        acts = rng.uniform(-1, 1, (steps + 1, 6)).astype(np.float32)
        env.step(acts[0])  # warm-up
        t0 = time.perf_counter()
        for a in acts[1:]:
            env.step(a)
        out[shadows] = steps / (time.perf_counter() - t0)
    return out


def main(threads: int = 1, paper_updates: int = 2, skip_paper: bool = False, nb_updates: int = 10,
         skip_dmc: bool = False) -> list[dict]:
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        nb = Config()
        sizes = [("notebook", nb, 10 * nb.minatar_scale, nb_updates, nb.imagine_batch_size)]
        if not skip_paper:
            sizes.append(("paper", paper_model_config(), 64, paper_updates, 256))
        for name, cfg, side, updates, ib in sizes:
            res = {}
            for prior in ("mlp", "maskgit"):
                r = measure(cfg, side, prior, updates, ib, cfg.horizon)
                res[prior] = r
                batch = f"batch {cfg.batch_size}x{cfg.batch_length}"
                rows += [
                    {"figure": f"{name} size, {prior} prior: world-model updates/s ({batch}, {updates} timed)",
                     "value": r["updates_per_s"], "unit": "updates/s"},
                    {"figure": f"{name} size, {prior} prior: imagined steps/s (KV cache, batch {ib}, horizon {cfg.horizon})",
                     "value": r["imagined_steps_per_s"], "unit": "steps/s"},
                    {"figure": f"{name} size, {prior} prior: KV-cache speed-up of imagination",
                     "value": r["imagined_steps_per_s"] / r["uncached_imagined_steps_per_s"], "unit": "x"},
                ]
            rows += [
                {"figure": f"{name} size: MaskGIT / MLP world-model update rate",
                 "value": res["maskgit"]["updates_per_s"] / res["mlp"]["updates_per_s"], "unit": "ratio"},
                {"figure": f"{name} size: MaskGIT / MLP imagined-step rate",
                 "value": res["maskgit"]["imagined_steps_per_s"] / res["mlp"]["imagined_steps_per_s"], "unit": "ratio"},
            ]
        # state-mixer variants, continuous 6-dim actions (DMC walker's), notebook size, MaskGIT prior
        nb = Config()
        mix = {}
        for kind in ("concat", "concat+attn", "z+attn"):
            cfg = dataclasses.replace(nb, state_mixer=kind)
            mix[kind] = measure(cfg, 10 * nb.minatar_scale, "maskgit", nb_updates, nb.imagine_batch_size,
                                nb.horizon, n_actions=6, uncached=False, continuous=True)
        for kind in ("concat+attn", "z+attn"):
            rows += [
                {"figure": f"notebook size, maskgit prior, continuous actions: {kind} / concat mixer update rate",
                 "value": mix[kind]["updates_per_s"] / mix["concat"]["updates_per_s"], "unit": "ratio"},
                {"figure": f"notebook size, maskgit prior, continuous actions: {kind} / concat mixer imagined-step rate",
                 "value": mix[kind]["imagined_steps_per_s"] / mix["concat"]["imagined_steps_per_s"], "unit": "ratio"},
            ]
        rows.append({"figure": "notebook size, maskgit prior, continuous actions, concat mixer: world-model updates/s",
                     "value": mix["concat"]["updates_per_s"], "unit": "updates/s"})
        if not skip_dmc:
            try:
                import dm_control  # noqa: F401
            except ImportError:
                print("dm_control not installed: DMC env rows skipped (pip install -e '.[dmc]')")
            else:
                d = measure_dmc()
                rows += [
                    {"figure": "DMC walker-walk 64x64, action repeat 2: env steps/s (shadows, reflections)",
                     "value": d[True], "unit": "steps/s"},
                    {"figure": "DMC walker-walk 64x64, action repeat 2: env steps/s without shadows/reflections",
                     "value": d[False], "unit": "steps/s"},
                    {"figure": "DMC rendering speed-up without shadows/reflections", "value": d[False] / d[True],
                     "unit": "x"},
                ]
    finally:
        torch.set_num_threads(prev)
    for r in rows:
        print(f"{r['figure']}: {r['value']:.4g} {r['unit']}")
    print(f"(CPU, {threads} torch thread(s); wall times on a shared machine are inflated, ratios within this run are comparable)")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--paper-updates", type=int, default=2)
    ap.add_argument("--nb-updates", type=int, default=10)
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument("--skip-dmc", action="store_true")
    a = ap.parse_args()
    main(a.threads, a.paper_updates, a.skip_paper, a.nb_updates, a.skip_dmc)
