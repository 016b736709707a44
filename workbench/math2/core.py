"""``run(cfg)``: seed problems -> skills -> skill repository -> five-stage pipeline -> annotation store
-> evaluation on seed vs generated questions, returning plain data for the notebook, widget and tests.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..llm import load_llm
from ..seeding import make_rng
from .config import Config
from .data import load_seed_problems
from .evaluate import (PAPER_TABLE, evaluate, fit_square_law, generated_gold, paper_square_law, skill_accuracies,
                       skill_product_prediction)
from .pipeline import STAGES, run_pipeline
from .skills import assign_skills, build_repository, cluster_skills, label_skills, reassign, save_repository
from .structured import Parsed, tally
from .store import AnnotationStore


def _usage(llm) -> dict[str, Any]:
    u = getattr(llm, "usage", None)
    return {k: getattr(u, k, 0) for k in ("calls", "requests", "completions", "prompt_tokens", "completion_tokens",
                                          "cache_hits")} if u is not None else {}


def _delta(a: dict, b: dict) -> dict:
    return {k: b.get(k, 0) - a.get(k, 0) for k in b}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def select_problems(problems: list[dict], n: int, seed: int) -> list[dict]:
    """``n`` problems picked at random (all when n == 0 or n >= len), in their original order."""
    if n == 0 or n >= len(problems):
        return list(problems)
    idx = sorted(make_rng(seed, "seed_problems").choice(len(problems), size=n, replace=False))
    return [problems[i] for i in idx]


def run(cfg: Config | None = None, *, llm=None, eval_llms: dict | None = None, out_dir: str | Path | None = None,
        progress: bool = True) -> dict[str, Any]:
    """Run everything. ``llm`` overrides ``cfg.backend`` (tests pass a scripted backend); ``eval_llms``
    maps spec -> model for the extra evaluated backends (else they are loaded from ``cfg.eval_backends``).
    With ``out_dir``: writes ``skills.json``, ``annotations.sqlite`` and ``generated.jsonl`` there."""
    cfg = cfg or Config()
    llm = llm if llm is not None else load_llm(cfg.backend)
    problems = select_problems(load_seed_problems(cfg.seed_source), cfg.n_seed_problems, cfg.seed)
    usage: dict[str, dict] = {}

    # ---- skill extraction
    u0 = _usage(llm)
    labels = label_skills(problems, llm, seed=cfg.seed, max_tokens=cfg.label_max_tokens, structured=cfg.structured,
                          lenient=cfg.lenient_parsing)
    clustering = cluster_skills(labels, problems, method=cfg.clusterer, k=cfg.n_coarse_skills,
                                cluster_text=cfg.cluster_text, llm=llm, seed=cfg.seed)
    assignments: list[dict] = []
    skill_list = sorted(set(clustering["coarse"].values()))
    if cfg.label_from_skill_list and len(skill_list) >= 2:
        assignments = assign_skills(problems, labels, skill_list, llm, seed=cfg.seed, max_tokens=cfg.assign_max_tokens,
                                    structured=cfg.structured, lenient=cfg.lenient_parsing)
        clustering = reassign(clustering, assignments)
    repo = build_repository(problems, labels, clustering)
    usage["skills"] = _delta(u0, _usage(llm))

    # ---- pipeline
    u0 = _usage(llm)
    n_skills = sum(bool(s["exemplars"]) for s in repo["skills"].values())
    if n_skills >= 2:
        pipe = run_pipeline(repo, llm, cfg, progress=progress)
    else:  # too few readable labels to form a pair: reported, not hidden
        pipe = {"candidates": [], "yields": {"pairs_sampled": 0, **{s: 0 for s in STAGES}},
                "unparsed": {s: 0 for s in STAGES}, "parse": {s: tally([]) for s in STAGES}}
    usage["pipeline"] = _delta(u0, _usage(llm))
    cands = pipe["candidates"]

    # ---- evaluation: every evaluated model on the seed problems and on the kept questions, the latter with
    #      a reference answer that is not the same model's vote (cfg.gold)
    gen_problems, gold_left_out = generated_gold(cands, cfg.gold, include_dropped=cfg.eval_include_dropped)
    models = {getattr(llm, "spec", cfg.backend): llm}
    for spec in cfg.eval_backends:
        models[spec] = (eval_llms or {}).get(spec) or load_llm(spec)
    evals = {}
    u0 = _usage(llm)
    ev_kw = dict(seed=cfg.seed, max_tokens=cfg.eval_max_tokens, structured=cfg.structured,
                 reasoning_chars=cfg.answer_reasoning_chars)
    for spec, m in tqdm(models.items(), desc="math2 evaluation", disable=not progress or len(models) < 2):
        seed_ev = evaluate(m, problems, tag="seed", **ev_kw)
        gen_ev = evaluate(m, gen_problems, tag="generated", **ev_kw)
        s_acc = skill_accuracies(seed_ev, clustering["coarse"])
        evals[spec] = {"seed": seed_ev, "generated": gen_ev, "skill_accuracy": s_acc,
                       "predicted_generated_accuracy": skill_product_prediction(gen_problems, s_acc)}
    usage["evaluation_main_model"] = _delta(u0, _usage(llm))
    points = [(e["seed"]["accuracy"], e["generated"]["accuracy"]) for e in evals.values()
              if e["seed"]["accuracy"] is not None and e["generated"]["accuracy"] is not None]
    ours = fit_square_law([p[0] for p in points], [p[1] for p in points])

    # ---- files: skill repository, annotation store, machine-kept questions as JSONL
    files = {}
    if out_dir:
        out = Path(out_dir)
        files["skills"] = str(save_repository(repo, out / "skills.json"))
        store = AnnotationStore(out / "annotations.sqlite")
        prov = {"backend": getattr(llm, "spec", cfg.backend), "model": getattr(llm, "model", None), "seed": cfg.seed,
                "seed_source": cfg.seed_source, "clusterer": cfg.clusterer, "pipeline": "math2"}
        store.add_generated(cands, provenance=prov)
        n_exp = store.export_jsonl(out / "generated.jsonl", statuses=("pending", "edited", "accepted"))
        files.update({"store": str(store.path), "generated_jsonl": str(out / "generated.jsonl"),
                      "n_exported": n_exp})

    main = next(iter(evals.values()))
    coarse_counts = {s: len(v["exemplars"]) for s, v in repo["skills"].items()}
    parse = {"labels": tally(Parsed(r["label"], r["how"], r["truncated"]) for r in labels)}
    if assignments:
        parse["skill_choice"] = tally(Parsed(a["skill"], a["how"], a["truncated"]) for a in assignments)
    parse.update({"questions" if k == "generation" else k: v for k, v in pipe["parse"].items()})
    parse["eval_seed"] = main["seed"]["parse"]
    parse["eval_generated"] = main["generated"]["parse"]
    sd, gd = main["seed"], main["generated"]
    summary = {
        "n_seed_problems": len(problems),
        "structured": cfg.structured,
        "gold": cfg.gold,
        "skills": {"n_labelled": len(problems) - clustering["n_unlabelled"], "n_unlabelled": clustering["n_unlabelled"],
                   "n_fine_labels": len(clustering["fine_to_coarse"]), "n_coarse": len(coarse_counts),
                   "n_unassigned": clustering.get("n_unassigned", 0)},
        "yields": pipe["yields"],
        "dropped_at": dict(Counter(c["dropped_at"] for c in cands if c["status"] == "dropped")),
        "n_verified": sum(bool((c.get("verification") or {}).get("verified")) for c in cands),
        "parse_strict_share": {k: _r(v["strict_share"]) for k, v in parse.items()},
        "parse_lenient_only_share": {k: _r(v["lenient_only_share"]) for k, v in parse.items()},
        "parse_unparsed_share": {k: _r(v["unparsed_share"]) for k, v in parse.items()},
        "truncated_share": {k: _r(v["truncated_share"]) for k, v in parse.items()},
        "accuracy": {"seed": sd["accuracy"], "seed_se": sd["accuracy_se"], "seed_lenient": sd["accuracy_lenient"],
                     "generated": gd["accuracy"], "generated_se": gd["accuracy_se"],
                     "generated_lenient": gd["accuracy_lenient"], "n_generated": gd["n"],
                     "seed_squared": None if sd["accuracy"] is None else sd["accuracy"] ** 2,
                     "predicted_generated_from_skills": main["predicted_generated_accuracy"]},
        "paper_square_law_alpha": paper_square_law()["alpha"],
    }
    if len(models) > 1:
        summary["square_law_alpha"] = ours["alpha"]
    return {
        "summary": summary,
        "config": cfg,
        "problems": problems,
        "labels": labels,
        "clustering": {k: v for k, v in clustering.items()},
        "repository": repo,
        "assignments": assignments,
        "candidates": cands,
        "parse": parse,
        "gold_left_out": gold_left_out,
        "evaluations": evals,
        "square_law": {"ours": ours, "points": {s: [e["seed"]["accuracy"], e["generated"]["accuracy"]]
                                                for s, e in evals.items()},
                       "paper": paper_square_law(), "paper_table": [dict(r) for r in PAPER_TABLE]},
        "usage": usage,
        "files": files,
    }


def to_json(results: dict) -> str:
    """The results as JSON text (for saving next to a run)."""
    from ..results import to_jsonable

    return json.dumps(to_jsonable(results), indent=1)
