"""DEL GFlowNet throughput: reward evaluations/s (molecules through enumeration + the PPI classifier)
with and without the per-molecule score cache, and GFlowNet training iterations/s, all in one run.

Wall times on a shared CPU are inflated by contention; the cached / uncached ratios are measured
back to back in this run and are the figures to compare. Run: ``python benchmarks/del_gflownet.py``.
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import torch

from workbench.del_gflownet import baselines as bl
from workbench.del_gflownet.config import Config
from workbench.del_gflownet.core import labelled_set, load_pool, torch_threads
from workbench.del_gflownet.env import FlatDELEnv, HierarchicalDELEnv, cluster_blocks
from workbench.del_gflownet.models import PPIModel, to_mol
from workbench.del_gflownet.reactions import DEFAULT_SCHEME, LibraryEnumerator
from workbench.del_gflownet.reward import LibraryReward, ModelScorer
from workbench.del_gflownet.train import build_gflownet, train_gflownet


def _rate(fn, n_items: int) -> float:
    t = time.perf_counter()
    fn()
    return n_items / (time.perf_counter() - t)


def main(n_libraries: int = 48, n_iterations: int = 15) -> list[dict]:
    cfg = Config(n_blocks_per_cycle=16, quota_per_cycle=3, n_label_molecules=300)
    rows = []
    with torch_threads(1):
        full, pool = load_pool(cfg)
        data = labelled_set(cfg, full, DEFAULT_SCHEME, progress=False)
        model = PPIModel("rf", rf_trees=50, seed=0).fit([to_mol(s) for s in data["smiles"]], data["label"])
        quotas = [cfg.quota_per_cycle] * 3
        libs = bl.random_libraries(pool.sizes, quotas, n_libraries, seed=1)
        n_mol = n_libraries * cfg.quota_per_cycle ** 3

        uncached = LibraryReward(ModelScorer(LibraryEnumerator(pool.smiles, cache=False), model, cache=False),
                                 pool.sizes, cfg.beta)
        cached = LibraryReward(ModelScorer(LibraryEnumerator(pool.smiles), model, cache=True), pool.sizes, cfg.beta)
        r_unc = _rate(lambda: uncached.log_reward(libs), n_mol)
        r_cold = _rate(lambda: cached.log_reward(libs), n_mol)
        r_warm = _rate(lambda: cached.log_reward(libs), n_mol)
        assert np.allclose(uncached.log_reward(libs[:4]), cached.log_reward(libs[:4]))
        rows += [
            {"figure": "reward evals, uncached", "value": r_unc, "unit": "molecules/s"},
            {"figure": "reward evals, cached (cold: first sight)", "value": r_cold, "unit": "molecules/s"},
            {"figure": "reward evals, cached (warm)", "value": r_warm, "unit": "molecules/s"},
            {"figure": "cache speed-up, warm / uncached", "value": r_warm / r_unc, "unit": "x"},
        ]
        # steady state for training: every product of the pool scored once, so "cached" training
        # below measures lookups only (the cold cost is the warm-up figure)
        all_tuples = np.array(list(itertools.product(*[range(n) for n in pool.sizes])))
        rows.append({"figure": "cache warm-up, every pool product", "unit": "molecules/s",
                     "value": _rate(lambda: cached.scorer.score_tuples(all_tuples), len(all_tuples))})
        clusters = [cluster_blocks(s, 4) for s in pool.smiles]
        for name, reward in (("cached", cached), ("uncached", uncached)):
            for space in ("flat", "hierarchical"):
                if space == "flat":
                    env = FlatDELEnv(pool.sizes, quotas, reward.log_reward_torch)
                else:
                    env = HierarchicalDELEnv(pool.sizes, quotas, clusters, reward.log_reward_torch)
                torch.manual_seed(0)
                g = build_gflownet(env, "tb", init_logz=25.0)
                iters = n_iterations if name == "cached" else max(3, n_iterations // 3)  # uncached is slow
                h = train_gflownet(env, g, n_iterations=iters, batch_size=16, seed=0, progress=False)
                rows.append({"figure": f"TB training, {space}, reward {name}", "value": iters / h["seconds"],
                             "unit": "it/s (batch 16)"})
    it = {r["figure"]: r["value"] for r in rows}
    for space in ("flat", "hierarchical"):
        rows.append({"figure": f"training speed-up from the cache, {space}", "unit": "x",
                     "value": it[f"TB training, {space}, reward cached"] / it[f"TB training, {space}, reward uncached"]})
    for r in rows:
        print(f"{r['figure']:<45} {r['value']:>10.2f} {r['unit']}")
    return rows


if __name__ == "__main__":
    main()
