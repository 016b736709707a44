"""``run(cfg)``: reward model, GFlowNets (flat / hierarchical, TB / DB) and baselines for DEL design.

Reproduces the pipeline of Koziarski et al., "Towards DNA-Encoded Library Generation with
GFlowNets" (arXiv 2404.10094) at CPU scale. Reconstructions (the paper is silent or has no public
code), each a config field: the built-in building blocks and reaction scheme, the proxy labels
(QEPPI + Rule of Four) used when no labelled data are given, beta, fixed per-cycle quotas, the
product sampling of large libraries, the cluster count of the hierarchical action space, and the
baselines' settings.
"""
from __future__ import annotations

import contextlib
import math
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.del_gflownet import baselines as bl
from workbench.del_gflownet.action_space import run_action_space
from workbench.del_gflownet.blocks import BuildingBlocks, builtin_blocks, load_blocks_csv
from workbench.del_gflownet.config import Config
from workbench.del_gflownet.env import FlatDELEnv, HierarchicalDELEnv, cluster_blocks
from workbench.del_gflownet.metrics import library_set_metrics, molecule_diversity
from workbench.del_gflownet.models import (FEATURE_SETS, MODEL_NAMES, PPIModel, evaluate, label_feature_overlap,
                                           load_labelled_csv, murcko_scaffold, proxy_labels, scaffold_split, to_mol)
from workbench.del_gflownet.reactions import DEFAULT_SCHEME, LibraryEnumerator
from workbench.del_gflownet.reward import LibraryReward, ModelScorer
from workbench.del_gflownet.train import build_gflownet, sample_libraries, train_gflownet
from workbench.seeding import derive_seed, make_rng


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` torch threads, restoring the previous setting afterwards."""
    old = torch.get_num_threads()
    if n and n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def parse_gflownet_specs(spec: str) -> list[tuple[str, str]]:
    """``"flat:tb,hierarchical:db"`` -> [("flat", "tb"), ("hierarchical", "db")]."""
    out = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        space, _, obj = part.partition(":")
        if space not in ("flat", "hierarchical") or obj not in ("tb", "db"):
            raise ValueError(f"bad GFlowNet spec {part!r}: use flat|hierarchical : tb|db")
        out.append((space, obj))
    if not out:
        raise ValueError("no GFlowNet to train")
    return out


def load_pool(cfg: Config) -> tuple[BuildingBlocks, BuildingBlocks]:
    """(full set, the seeded subset used as the design pool)."""
    full = load_blocks_csv(cfg.blocks_csv) if cfg.blocks_csv else builtin_blocks()
    if cfg.n_blocks_per_cycle and cfg.n_blocks_per_cycle > 0:
        idx = []
        for c, n in enumerate(full.sizes):
            k = min(cfg.n_blocks_per_cycle, n)
            idx.append(sorted(make_rng(cfg.seed, "pool", c).choice(n, size=k, replace=False).tolist()))
        return full, full.subset(idx)
    return full, full


def labelled_set(cfg: Config, full: BuildingBlocks, scheme, progress: bool) -> dict:
    """Labelled molecules: the user's CSV, or proxy-labelled random products of the full block set."""
    if cfg.labelled_csv:
        d = load_labelled_csv(cfg.labelled_csv)
        return {"smiles": d["smiles"], "label": d["label"], "source": "user", "invalid": len(d["invalid"])}
    enum = LibraryEnumerator(full.smiles, scheme)
    rng = make_rng(cfg.seed, "label_products")
    smiles, seen = [], set()
    for _ in tqdm(range(cfg.n_label_molecules), desc="label set", disable=not progress, leave=False):
        t = tuple(int(rng.integers(n)) for n in full.sizes)
        s = enum.product(t)
        if s is not None and s not in seen:
            seen.add(s)
            smiles.append(s)
    lab = proxy_labels([to_mol(s) for s in smiles], cfg.qeppi_threshold, cfg.ro4_min)
    return {"smiles": smiles, "label": lab["label"], "qeppi": lab["qeppi"], "ro4": lab["ro4"],
            "source": "proxy_qeppi_ro4", "invalid": len(enum.report.failures)}


def _library_view(reward: LibraryReward, pool: BuildingBlocks, bits: np.ndarray, log_r: float, beta: float) -> dict:
    sel = reward.selection(bits)
    p = reward.molecule_scores(bits[None])[0]
    prods = reward.products(bits)
    enum = reward.scorer.enumerator
    order = np.argsort(-np.nan_to_num(p, nan=-1.0), kind="stable")[:5]
    return {
        "blocks": [[{"id": pool.ids[c][i], "smiles": pool.smiles[c][i]} for i in s] for c, s in enumerate(sel)],
        "log_reward": float(log_r), "mean_p": float(log_r / beta),
        "p": [None if np.isnan(v) else float(v) for v in p],
        "top_products": [{"smiles": enum.product(tuple(int(v) for v in prods[i])), "p": float(p[i])} for i in order],
    }


def run(cfg: Config | None = None, *, scheme=DEFAULT_SCHEME, progress: bool = True) -> dict:
    """Train the PPI classifiers and reward, the GFlowNets and the baselines; return plain data.

    Returns a dict with ``summary`` (scalars printed by the notebook), ``classifiers`` (metrics per
    model), ``methods`` (per method: metrics, libraries as bit lists, log rewards), ``training``
    (per GFlowNet: loss / reward curves), ``views`` (libraries for the widget), ``pool`` and
    ``enumeration`` reports.
    """
    cfg = cfg or Config()
    models = [m.strip() for m in cfg.models.split(",") if m.strip()]
    for m in models:
        if m not in MODEL_NAMES:
            raise ValueError(f"unknown model {m!r}; choose from {MODEL_NAMES}")
    if cfg.reward_model not in models:
        raise ValueError(f"reward_model {cfg.reward_model!r} must be one of models {models}")
    specs = parse_gflownet_specs(cfg.gflownets)
    timings: dict[str, float] = {}
    with torch_threads(cfg.torch_threads):
        t0 = time.perf_counter()
        full, pool = load_pool(cfg)
        if len(scheme) != pool.n_cycles - 1:
            raise ValueError(f"{pool.n_cycles} cycles need {pool.n_cycles - 1} reaction templates")
        quotas = [cfg.quota_per_cycle] * pool.n_cycles
        # --- labelled data and classifiers -------------------------------------------------
        data = labelled_set(cfg, full, scheme, progress)
        mols = [to_mol(s) for s in data["smiles"]]
        y = np.asarray(data["label"])
        scaffolds = [murcko_scaffold(m) for m in mols]
        tr, te = scaffold_split(scaffolds, cfg.test_frac, seed=cfg.seed)
        leak = len({scaffolds[i] for i in tr} & {scaffolds[i] for i in te})
        overlap = label_feature_overlap(cfg.features) if data["source"] != "user" else []
        if overlap and not cfg.allow_label_inputs:
            raise ValueError(f"features={cfg.features!r} contain inputs of the proxy label ({', '.join(overlap)}): "
                             "the label would be computable from the features. Use features='ecfp', give a "
                             "labelled_csv, or set allow_label_inputs=True for a leak diagnostic.")
        classifiers, fitted = {}, {}
        for name in tqdm(models, desc="classifiers", disable=not progress, leave=False):
            ts = time.perf_counter()
            mdl = PPIModel(name, features=cfg.features, n_bits=cfg.n_bits, seed=cfg.seed, rf_trees=cfg.rf_trees,
                           gnn_epochs=cfg.gnn_epochs, progress=progress)
            mdl.fit([mols[i] for i in tr], y[tr])
            classifiers[name] = evaluate(y[te], mdl.predict_proba([mols[i] for i in te]))
            timings[f"fit_{name}_s"] = time.perf_counter() - ts
            fitted[name] = mdl
        leak_check = {}
        if cfg.leak_check and data["source"] != "user":
            # the same RF on each feature set, same split: how much of the score comes from label inputs
            for fs in FEATURE_SETS:
                if fs == cfg.features and "rf" in classifiers:
                    auc = classifiers["rf"]["roc_auc"]
                else:
                    mdl = PPIModel("rf", features=fs, n_bits=cfg.n_bits, seed=cfg.seed, rf_trees=cfg.rf_trees)
                    mdl.fit([mols[i] for i in tr], y[tr])
                    auc = evaluate(y[te], mdl.predict_proba([mols[i] for i in te]))["roc_auc"]
                leak_check[fs] = {"rf_roc_auc": auc, "label_inputs_in_features": len(label_feature_overlap(fs))}
        timings["classifiers_s"] = time.perf_counter() - t0
        # --- reward --------------------------------------------------------------------------
        enum = LibraryEnumerator(pool.smiles, scheme)
        scorer = ModelScorer(enum, fitted[cfg.reward_model])
        reward = LibraryReward(scorer, pool.sizes, cfg.beta, max_products=cfg.max_products,
                               failure_policy=cfg.failure_policy, seed=cfg.seed)
        n_prod = lambda b: np.array([int((~np.isnan(p)).sum()) for p in reward.molecule_scores(b)])  # noqa: E731

        methods: dict[str, dict] = {}
        n_out, budget = cfg.n_eval_samples, cfg.n_iterations * cfg.batch_size
        if budget < n_out:
            raise ValueError(f"n_iterations * batch_size ({budget}) must be >= n_eval_samples ({n_out})")
        lib_size = min(int(np.prod(quotas)), cfg.max_products)  # products scored per library reward
        # mode threshold: a separate reference set of uniformly random libraries (no method's output)
        libs_ref = bl.random_libraries(pool.sizes, quotas, cfg.n_reference, seed=derive_seed(cfg.seed, "reference"))
        lr_ref = reward.log_reward(libs_ref)
        mode_threshold = float(np.quantile(lr_ref / cfg.beta, cfg.mode_quantile))
        mkw = dict(top_k=cfg.top_k, mode_threshold=mode_threshold, mode_min_distance=cfg.mode_min_distance)

        def account(name: str, fn):
            """Run one method; record the reward calls it made (library rewards and product scores)."""
            c0, m0 = reward.n_library_calls, scorer.n_evaluations
            bits, extra = fn()
            methods[name] = {"bits": bits, **extra, "budget": {
                "n_libraries": int(len(bits)), "library_calls": reward.n_library_calls - c0,
                "molecule_scores": scorer.n_evaluations - m0}}

        account("random", lambda: (bl.random_libraries(pool.sizes, quotas, n_out, seed=cfg.seed), {}))
        account("random_search", lambda: (bl.random_search(reward, pool.sizes, quotas, n_calls=budget, n_out=n_out,
                                                           seed=cfg.seed)[0], {}))
        # --- GFlowNets -----------------------------------------------------------------------
        # TB's log Z starts at a Monte-Carlo estimate from the reference libraries (uniform proposal):
        # log Z ~ log(#libraries) + log mean R. Without it, log Z must climb ~20 nats at lr_logz.
        n_libs = float(np.prod([math.comb(n, q) for n, q in zip(pool.sizes, quotas)]))
        init_logz = (math.log(n_libs) + float(np.logaddexp.reduce(lr_ref)) - math.log(len(lr_ref))
                     if cfg.tb_init_logz_estimate else 0.0)
        clusters = [cluster_blocks(s, min(cfg.n_clusters_per_cycle, len(s))) for s in pool.smiles]
        training = {}
        for space, obj in specs:
            name = f"gfn_{space}_{obj}"

            def gfn_method(space=space, obj=obj, name=name):
                if space == "flat":
                    env = FlatDELEnv(pool.sizes, quotas, reward.log_reward_torch)
                else:
                    env = HierarchicalDELEnv(pool.sizes, quotas, clusters, reward.log_reward_torch)
                gseed = derive_seed(cfg.seed, name)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(gseed)  # network initialisation, local to this block
                    model = build_gflownet(env, obj, hidden=cfg.hidden, init_logz=init_logz)
                hist = train_gflownet(env, model, n_iterations=cfg.n_iterations, batch_size=cfg.batch_size,
                                      lr=cfg.lr, lr_logz=cfg.lr_logz, epsilon=cfg.epsilon, seed=gseed,
                                      progress=progress, desc=name)
                timings[f"{name}_s"] = hist.pop("seconds")
                training[name] = hist
                return sample_libraries(env, model, n_out, seed=gseed), {}

            account(name, gfn_method)
        # --- other baselines, same output count and reward calls ------------------------------
        sa_info, top_info = {}, {}

        def sa_method():
            libs, info = bl.simulated_annealing(reward, pool.sizes, quotas, n_chains=n_out,
                                                n_evaluations=budget, seed=cfg.seed, progress=progress)
            sa_info.update(info)
            return libs, {}

        def topk_method():
            libs, info = bl.topk_libraries(reward, pool.sizes, quotas, n_libraries=n_out,
                                           molecule_budget=budget * lib_size, seed=cfg.seed)
            top_info.update(info)
            return libs, {}

        account("annealing", sa_method)
        account("topk", topk_method)
        for m in methods.values():
            m["log_reward"] = reward.log_reward(m["bits"])
        # --- metrics -------------------------------------------------------------------------
        for name, m in methods.items():
            m["metrics"] = library_set_metrics(m["bits"], m["log_reward"], cfg.beta, n_products=n_prod(m["bits"]), **mkw)
            m["metrics"]["molecule_tanimoto"] = molecule_diversity(reward, m["bits"], cfg.n_diversity_molecules,
                                                                   seed=cfg.seed)
        views = {}
        for name, m in methods.items():
            _, first = np.unique(m["bits"], axis=0, return_index=True)
            best = sorted(first.tolist(), key=lambda i: -m["log_reward"][i])[:3]
            views[name] = [_library_view(reward, pool, m["bits"][i], m["log_reward"][i], cfg.beta) for i in best]
        ta = time.perf_counter()
        action_space = run_action_space(cfg, full, progress=progress) if cfg.action_space_seeds > 0 else None
        timings["action_space_s"] = time.perf_counter() - ta
        timings["total_s"] = time.perf_counter() - t0

    summary = {
        "labels": {"n": int(len(y)), "positive_rate": float(y.mean()), "scaffold_overlap": leak},
        "classifier": {n: {"roc_auc": v["roc_auc"], "pr_auc": v["pr_auc"]} for n, v in classifiers.items()},
        "methods": {n: {k: m["metrics"][k] for k in ("mean_p", "top_k_mean_p", "library_jaccard_distance",
                                                      "n_modes", "unique_fraction", "molecule_tanimoto")}
                    for n, m in methods.items()},
        "budget": {n: m["budget"] for n, m in methods.items()},
        "feature_label_overlap": overlap,
        "leak_check_rf_roc_auc": {fs: v["rf_roc_auc"] for fs, v in leak_check.items()},
        "action_space": None if action_space is None else {
            "summary": action_space["summary"], "hierarchical_minus_flat": action_space["hierarchical_minus_flat"]},
        "mode_threshold_p": mode_threshold,
        "log_z_init": init_logz,
        "enumeration_failures": len(enum.report.failures),
    }
    return {
        "summary": summary,
        "classifiers": classifiers,
        "labels": {"source": data["source"], "n": int(len(y)), "positive_rate": float(y.mean()),
                   "n_train": int(len(tr)), "n_test": int(len(te)), "scaffold_overlap": leak,
                   "invalid_rows": int(data["invalid"])},
        "methods": {n: {"metrics": m["metrics"], "budget": m["budget"], "bits": m["bits"].astype(int).tolist(),
                        "log_reward": m["log_reward"].tolist()} for n, m in methods.items()},
        "training": training,
        "leak_check": leak_check,
        "action_space": action_space,
        "annealing": sa_info,
        "topk": top_info,
        "views": views,
        "pool": {"sizes": pool.sizes, "quotas": quotas, "ids": pool.ids, "smiles": pool.smiles,
                 "clusters": [c.tolist() for c in clusters], "invalid_blocks": len(full.invalid)},
        "enumeration": {"n_failures": len(enum.report.failures), "n_ambiguous": enum.report.n_ambiguous,
                        "failures": [[list(k), v[1]] for k, v in list(enum.report.failures.items())[:50]]},
        "cache": {"molecules_scored": scorer.n_model_molecules, "tuple_requests": scorer.n_evaluations},
        "timings": timings,
    }
