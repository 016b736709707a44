"""Per-token cost of structured outputs on the embedded model (transformers backend, xgrammar masks):
each structure kind against unconstrained decoding, at batch 1 and batch 8, as ratios measured in one
run (goal of issue 16: <= 1.05x per token).

Every run generates exactly ``tokens`` tokens per row, so the runs compare like with like: the
unconstrained baseline uses ``ignore_eos``, and each structure is chosen so it cannot end sooner (long
minimum lengths; for reason-then-answer, a reasoning bound longer than the run, so the run stays in
the reasoning part unless the model writes the tag early: its token count is reported and the ratio
is per token). Each (kind, batch) pair is timed ``repeats`` times interleaved with the baseline, and
the best of each is compared (the machine is shared: best-of is the least noisy estimate). The first
compile of each structure is timed separately and left out of the per-token figures.

    .venv/bin/python benchmarks/llm_structured.py [--tokens 32] [--repeats 3] [--kinds grammar,json]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = ["Write a short story about a cat.", "Describe the sea.", "List some fruits.", "Explain gravity.",
           "Write a poem about rain.", "Describe a forest.", "Tell me about Paris.", "Explain prime numbers."]


def structures():
    from workbench.llm import Choice, Grammar, JsonSchema, Regex, reason_then_answer

    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron sigma omega".split()
    long_options = [" ".join(words[(i + j) % len(words)] for j in range(120)) for i in range(8)]
    item = {"type": "object", "properties": {"id": {"type": "integer", "minimum": 0, "maximum": 999},
                                             "name": {"type": "string", "minLength": 1, "maxLength": 12}},
            "required": ["id", "name"]}
    return {
        "regex": Regex(r"[a-z ,.]{600,800}"),
        "choice": Choice(long_options),
        "json": JsonSchema({"type": "array", "items": item, "minItems": 60, "maxItems": 80}),
        # a word list closed by a literal the model is unlikely to write early (runs are per token anyway)
        "grammar": Grammar('root ::= word (" " word)* " <END>"\nword ::= [a-z]+'),
        # the same with a bounded repetition: xgrammar 0.2.9 tracks the repeat count in its parser state,
        # and its mask cost grows with every repetition (measured: ~4 ms per mask after 1 word, ~50 ms
        # after 60); reported on its own so the typical figure above is not mistaken for this one
        "grammar_bounded_repetition": Grammar('root ::= word (" " word){150,200}\nword ::= [a-z]{1,10}'),
        "reason_then_answer": reason_then_answer(Regex("[0-9]{1,3}"), max_reasoning_chars=2000),
    }


def main(tokens: int = 32, repeats: int = 3, spec: str = "default", kinds_only: list[str] | None = None) -> list[dict]:
    import torch

    from workbench.llm import SamplingParams, load_llm

    torch.set_num_threads(1)
    llm = load_llm(spec, cache="off")
    rows = []
    llm.generate(PROMPTS[:2], SamplingParams(max_tokens=4), seeds=[0, 1])  # warm-up
    kinds = structures()
    if kinds_only:
        unknown = sorted(set(kinds_only) - set(kinds))
        if unknown:
            raise SystemExit(f"unknown --kinds {unknown}; choose from {sorted(kinds)}")
        kinds = {k: v for k, v in kinds.items() if k in kinds_only}
    for kind, s in kinds.items():  # first compile (tokenizer info on the first one)
        t = time.perf_counter()
        llm._compiled(s)
        rows.append({"figure": f"first compile: {kind}", "value": time.perf_counter() - t, "unit": "s"})
    base_p = SamplingParams(temperature=1.0, max_tokens=tokens, ignore_eos=True)
    for batch in (1, 8):
        prompts, seeds = PROMPTS[:batch], list(range(batch))
        for kind, s in kinds.items():
            p = SamplingParams(temperature=1.0, max_tokens=tokens, structure=s)
            best_b = best_s = float("inf")
            n_b = n_s = 0
            for _ in range(repeats):
                t = time.perf_counter()
                out = llm.generate(prompts, base_p, seeds=seeds)
                dt = time.perf_counter() - t
                n_b = sum(c.completion_tokens for c in out)
                best_b = min(best_b, dt / n_b)
                t = time.perf_counter()
                out = llm.generate(prompts, p, seeds=seeds)
                dt = time.perf_counter() - t
                n_s = sum(c.completion_tokens for c in out)
                best_s = min(best_s, dt / n_s)
            rows.append({"figure": f"batch {batch} {kind}: per-token time / unconstrained", "value": best_s / best_b,
                         "unit": "x"})
            rows.append({"figure": f"batch {batch} {kind}: tokens (structured, unconstrained)",
                         "value": n_s, "unit": f"tokens (baseline {n_b})"})
            rows.append({"figure": f"batch {batch} unconstrained per-token time (beside {kind})", "value": best_b * 1e3,
                         "unit": "ms"})
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--spec", default="default")
    ap.add_argument("--kinds", default="", help="comma-separated structure kinds (default: all)")
    a = ap.parse_args()
    for r in main(a.tokens, a.repeats, a.spec, [k for k in a.kinds.split(",") if k] or None):
        print(f"{r['figure']:<62} {r['value']:>10.3f} {r['unit']}")
