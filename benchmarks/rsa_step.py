"""One RSA aggregation step (N=8, K=2) with the embedded model: all N prompts in one batched call vs
candidate by candidate (N calls of one prompt). Same prompts, same per-request seeds, cache off; the
ratio of the two wall times is measured within one run.

On GPU with vLLM, prefix caching (``vllm:<model>?enable_prefix_caching=true``) further helps RSA: the
K candidates of overlapping aggregation sets and the shared problem header are reused across the N
prompts of a step. Not measured here (CPU only).

``structured=True`` decodes under the notebook's structured outputs (the default Config's task and
reasoning form), as the notebook does for the embedded model.

Run: ``python benchmarks/rsa_step.py [--backend default] [--max-tokens 32] [--structured]``
"""
from __future__ import annotations

import argparse
import time

from workbench.llm import SamplingParams, load_llm
from workbench.rsa import Config, generate_initial, load_templates, make_task
from workbench.rsa.prompts import aggregate_prompt
from workbench.rsa.core import draw_subsets
from workbench.seeding import derive_seed


def main(backend: str = "default", n: int = 8, k: int = 2, max_tokens: int = 32, seed: int = 0,
         structured: bool = False) -> list[dict]:
    from workbench.rsa.answers import answer_structure

    llm = load_llm(backend, cache="off")
    cfg = Config(n_problems=1) if structured else Config(task="rg:chain_sum", n_problems=1)
    task = make_task(cfg)
    p = task.problems[0]
    tmpl = load_templates()
    st = answer_structure(task, task.problems, cfg.max_reasoning_chars, cfg.answer_pattern, cfg.reasoning) if structured else None
    sp = SamplingParams(temperature=0.7, max_tokens=max_tokens, structure=st)
    pop = generate_initial(llm, task, [p], n, sp, seed=seed, templates=tmpl, threshold=1.0)[0]
    sets = draw_subsets(seed, p.id, 2, n, k)
    prompts = [aggregate_prompt(tmpl, p.question, [pop[j]["text"] for j in s], task.format_hint, task.problem_kind) for s in sets]
    seeds = [derive_seed(seed, "rsa", p.id, 2, i) for i in range(n)]
    llm.generate(prompts[:1], sp.replace(max_tokens=4), seeds=seeds[:1])  # warm-up
    t0 = time.perf_counter()
    batched = llm.generate(prompts, sp, seeds=seeds)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [llm.generate([pr], sp, seeds=[s])[0] for pr, s in zip(prompts, seeds)]
    t_single = time.perf_counter() - t0
    tok_b = sum(c.completion_tokens for c in batched)
    tok_s = sum(c.completion_tokens for c in single)
    same = sum(a.text == b.text for a, b in zip(batched, single))
    rows = [
        {"figure": "rsa_step batched wall time (N=8, K=2)", "value": round(t_batched, 2), "unit": "s"},
        {"figure": "rsa_step one-by-one wall time (N=8, K=2)", "value": round(t_single, 2), "unit": "s"},
        {"figure": "rsa_step speed-up batched / one-by-one", "value": round(t_single / t_batched, 2), "unit": "x"},
        {"figure": "rsa_step batched completion tokens/s", "value": round(tok_b / t_batched, 1), "unit": "tok/s"},
        {"figure": "rsa_step one-by-one completion tokens/s", "value": round(tok_s / t_single, 1), "unit": "tok/s"},
        {"figure": "rsa_step identical texts batched vs one-by-one", "value": same, "unit": f"of {n}"},
    ]
    for r in rows:
        print(f"{r['figure']}: {r['value']} {r['unit']}")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="default")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--structured", action="store_true", help="decode under the notebook's structured outputs")
    a = ap.parse_args()
    main(a.backend, max_tokens=a.max_tokens, seed=a.seed, structured=a.structured)
