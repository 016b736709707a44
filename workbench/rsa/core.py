"""Recursive Self-Aggregation (RSA): Venkatraman et al. 2025, "Recursive Self-Aggregation Unlocks Deep
Thinking in Large Language Models", arXiv 2509.26626.

The algorithm, per problem, with population size N, subset size K and T generations:

1. Step 1: N independent samples of the question prompt form the population P_1.
2. Steps t = 2..T: for each of the N slots, independently, draw K distinct indices uniformly without
   replacement from {0..N-1} (sets may overlap across slots); the model answers the aggregation prompt
   built from those K candidates of P_{t-1}. The N answers *replace* the population (no elitism, no
   fitness). K = 1 uses the self-refinement prompt.
3. Cost: N*T generations per problem. All prompts of a step (every problem, every slot) go to the model
   in ONE batched call.

Every candidate keeps ``parents`` (the slots of P_{t-1} aggregated into it) so lineage can be drawn.
Randomness: the subsets of step t for problem p come from ``make_rng(seed, "subsets", p, t, K)`` and the
sampling seed of slot i from ``derive_seed(seed, "rsa", p, t, i)`` (first generation:
``derive_seed(seed, "initial", p, i)``), so a run is reproducible and a resumed run equals an
uninterrupted one. After each step a JSON checkpoint is written (never pickle; the reference code
pickles populations). A resume uses a checkpoint only if its fingerprint matches the run: seed, N, K,
sampling, templates, threshold, the task, the problems' content (ids, questions and answers: Reasoning
Gym ids do not change with the task seed) and the model's identity (:func:`model_identity`). A mismatch
or a file that cannot be read raises :class:`CheckpointError` naming the file (our choice over a silent
fresh run: it never overwrites results the user may want, and never mixes two runs).

Reconstructions (the paper text available here does not settle them; each is a config field):
- ``k1_parent``: with K = 1 each slot refines a uniformly drawn candidate ('uniform', the general rule)
  or its own ('self', which is the sequential self-refinement baseline).
- Correctness is ``score >= correct_threshold`` (Reasoning Gym scorers can return partial credit).
- Majority vote clusters parsed answers greedily by the task's equivalence (math-verify for math,
  numeric/normalised string equality otherwise); the largest cluster wins, ties to the earliest.
- Best-of-N with self-verification at a budget of B = N*t generations: m = B // 2 candidates, each
  judged once by the model (True/False); the answer is the majority among candidates judged True (all
  candidates when none is). Verdicts that cannot be parsed count as not True and are reported.
- Budget matching counts generations (N*t at step t); tokens are reported beside it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from ..llm import SamplingParams
from ..seeding import derive_seed, make_rng
from ..tasks.base import Problem, Task
from . import prompts as P
from .config import Config
from .answers import PARSE_CATEGORIES, VERDICT_STRUCTURE, answer_structure, parse_verdict, read_answer
from .metrics import average_metrics, majority_vote, population_metrics, standard_error

CHECKPOINT_FORMAT = "workbench.rsa.checkpoint/3"  # /2: fingerprint holds problem content, task, model; /3: strict + lenient readings


# --------------------------------------------------------------------------------------- tasks
def make_task(cfg: Config) -> Task:
    """The task named by ``cfg.task`` (see :class:`Config`)."""
    kind, _, arg = cfg.task.partition(":")
    limit = cfg.n_problems or None
    if kind == "rg":
        from ..tasks.reasoning_gym_tasks import EASY, SUBSETS, ReasoningGymTask

        names = list(SUBSETS[arg]) if arg in SUBSETS else [n.strip() for n in arg.split(",") if n.strip()]
        if not names:
            raise ValueError(f"task {cfg.task!r} names no Reasoning Gym task")
        conf = cfg.task_config or {n: EASY[n] for n in names if n in EASY}
        return ReasoningGymTask(names, size=cfg.n_problems or 10, seed=cfg.task_seed, config=conf)
    if kind == "hf":
        from ..tasks.loaders import load_hf

        return load_hf(arg, limit=limit)
    if kind == "jsonl":
        from ..tasks.loaders import load_jsonl

        return load_jsonl(arg, limit=limit)
    if kind in ("lcb", "codejsonl"):  # code tasks: programs judged by stdin/stdout tests in a sandbox
        from ..tasks.code_tasks import make_code_task

        return make_code_task(cfg.task, limit=limit)
    raise ValueError(f"unknown task {cfg.task!r}; use rg:<name>, rg:games, rg:cognition, hf:<aime25|hmmt25|gsm8k|math>, "
                     "jsonl:<path>, lcb:<release>[:<start>[:<end>]] or codejsonl:<path>")


def make_candidate(text: str, task: Task, problem: Problem, *, threshold: float, parents: Sequence[int],
                   prompt_tokens: int = 0, completion_tokens: int = 0, finish_reason: str = "") -> dict:
    """A candidate as a plain dict: text; the strict reading (``answer``, ``parse_strict``, ``score``,
    ``correct``: the headline); the lenient reading (``answer_lenient``, ``parse``, ``score_lenient``,
    ``correct_lenient``); ``category`` (strict | lenient_only | unparsed); ``truncated`` (the token
    budget ended it: ``finish_reason == "length"``); parents; tokens. An unparsed answer scores 0 and is
    not correct, and its category says why."""
    r = read_answer(task, text, problem)
    score = task.score(r["answer"], problem) if r["answer"] is not None else 0.0
    lscore = task.score(r["answer_lenient"], problem) if r["answer_lenient"] is not None else 0.0
    return {"text": text, "answer": r["answer"], "parse_strict": r["parse_strict"], "score": float(score),
            "correct": bool(r["answer"] is not None and score >= threshold),
            "answer_lenient": r["answer_lenient"], "parse": r["parse"], "score_lenient": float(lscore),
            "correct_lenient": bool(r["answer_lenient"] is not None and lscore >= threshold),
            "category": r["category"], "truncated": finish_reason == "length",
            "parents": [int(p) for p in parents],
            "prompt_tokens": int(prompt_tokens), "completion_tokens": int(completion_tokens),
            "finish_reason": finish_reason}


def _from_completion(c, task, problem, threshold, parents) -> dict:
    return make_candidate(c.text, task, problem, threshold=threshold, parents=parents,
                          prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens,
                          finish_reason=c.finish_reason)


def _equiv(task: Task, problem: Problem):
    return lambda a, b: task.equivalent(a, b, problem)


# ---------------------------------------------------------------------------------- sampling
def draw_subsets(seed: int, problem_id: str, step: int, n: int, k: int, k1_parent: str = "uniform") -> list[list[int]]:
    """The N aggregation sets of one step: each K distinct slots, uniform without replacement,
    drawn independently per slot. Shape (N, K).

    >>> s = draw_subsets(0, "p", 2, n=5, k=3)
    >>> len(s), all(len(set(x)) == 3 and max(x) < 5 for x in s)
    (5, True)
    >>> draw_subsets(0, "p", 2, n=3, k=1, k1_parent="self")
    [[0], [1], [2]]
    """
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= K <= N, got K={k}, N={n}")
    if k == 1 and k1_parent == "self":
        return [[i] for i in range(n)]
    rng = make_rng(seed, "subsets", problem_id, step, k)
    return [[int(x) for x in rng.choice(n, size=k, replace=False)] for _ in range(n)]


def initial_seed(seed: int, problem_id: str, j: int) -> int:
    return derive_seed(seed, "initial", problem_id, j)


def generate_initial(llm, task: Task, problems: Sequence[Problem], n: int, sampling: SamplingParams, *,
                     seed: int, templates: dict, threshold: float) -> list[list[dict]]:
    """``n`` independent samples per problem in one batched call. Shape (problems, n)."""
    prompts, seeds = [], []
    for p in problems:
        text = P.generate_prompt(templates, p.question, task.format_hint)
        prompts += [text] * n
        seeds += [initial_seed(seed, p.id, j) for j in range(n)]
    comps = llm.generate(prompts, sampling.replace(n=1), seeds=seeds)
    return [[_from_completion(comps[i * n + j], task, p, threshold, []) for j in range(n)]
            for i, p in enumerate(problems)]


# ------------------------------------------------------------------------------- checkpoints
class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, not a checkpoint of this format, of another
    run, or with a population of the wrong shape. The message names the file and what to do."""


def model_identity(llm) -> Any:
    """What identifies the model's outputs: a content identity the backend records (attribute
    ``identity``, ``model_identity`` or ``content_identity``, a value or a method; e.g. hashes of the
    weights), else its spec and model name. Two models saved at the same path differ only in the former."""
    for attr in ("identity", "model_identity", "content_identity"):
        v = getattr(llm, attr, None)
        if callable(v):
            v = v()
        if v is not None:
            return v
    return {"spec": getattr(llm, "spec", None), "model": getattr(llm, "model", None)}


def problems_digest(problems: Sequence[Problem]) -> str:
    """SHA-256 of the problems' ids, questions and reference answers: Reasoning Gym ids (``name/i``) do
    not depend on the task seed, so ids alone do not tell two problem sets apart."""
    blob = json.dumps([[p.id, p.question, p.answer] for p in problems], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _fingerprint(llm, problems, n, k, k1_parent, sampling, seed, templates, threshold, label, task=None) -> dict:
    th = hashlib.sha256(json.dumps(templates, sort_keys=True).encode()).hexdigest()[:16]
    task_info = None if task is None else {"class": type(task).__qualname__, "name": task.name,
                                           "format": task.format_hint, "kind": task.problem_kind}
    return json.loads(json.dumps({"label": label, "seed": seed, "problems": [p.id for p in problems],
            "problems_sha256": problems_digest(problems), "task": task_info, "N": n, "K": k,
            "k1_parent": k1_parent if k == 1 else None, "sampling": asdict(sampling.replace(n=1)),
            "templates": th, "backend": getattr(llm, "spec", None), "model": getattr(llm, "model", None),
            "model_identity": model_identity(llm), "threshold": threshold},
            default=str))  # JSON round trip: equal to what a checkpoint stores (tuples -> lists)


def checkpoint_path(directory: str | os.PathLike, label: str, step: int) -> Path:
    return Path(directory) / f"{label}_step{step:03d}.json"


def save_checkpoint(directory, label: str, step: int, fingerprint: dict, population: list[list[dict]]) -> Path:
    """Write step ``step``'s population as JSON (atomic replace)."""
    path = checkpoint_path(directory, label, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "step": step,
                               "population": population}))
    os.replace(tmp, path)
    return path


# candidate field -> accepted types (bool is an int: "correct" must be a bool, numbers must not be)
_CANDIDATE_FIELDS = {"text": (str,), "answer": (str, type(None)), "parse": (str, type(None)),
                     "parse_strict": (str, type(None)), "answer_lenient": (str, type(None)),
                     "score": (int, float), "correct": (bool,), "score_lenient": (int, float),
                     "correct_lenient": (bool,), "category": (str,), "truncated": (bool,),
                     "parents": (list,), "prompt_tokens": (int,), "completion_tokens": (int,),
                     "finish_reason": (str,)}


def _population_problem(pop: Any, n_problems: int, n: int) -> str | None:
    """What is wrong with a stored population (shape (problems, N) of candidate dicts), or None."""
    if not isinstance(pop, list) or len(pop) != n_problems:
        return f"population is not a list of {n_problems} problems"
    for i, row in enumerate(pop):
        if not isinstance(row, list) or len(row) != n:
            return f"population row {i} is not a list of N={n} candidates"
        for j, c in enumerate(row):
            if not isinstance(c, dict):
                return f"candidate [{i}][{j}] is not an object"
            for key, types in _CANDIDATE_FIELDS.items():
                v = c.get(key, KeyError)
                if v is KeyError:
                    return f"candidate [{i}][{j}] has no {key!r}"
                bad = not isinstance(v, types) or (isinstance(v, bool) and bool not in types)
                if not bad and key in ("score", "score_lenient") and v != v:
                    bad = True  # NaN
                if not bad and key == "category":
                    bad = v not in PARSE_CATEGORIES
                if not bad and key == "parents":
                    bad = not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < n for x in v)
                if bad:
                    return f"candidate [{i}][{j}] field {key!r} has the wrong type or value ({type(v).__name__})"
    return None


def load_checkpoints(directory, label: str, fingerprint: dict, max_steps: int) -> list[list[list[dict]]]:
    """Populations of steps 1, 2, ... found in ``directory`` (stops at the first missing step).

    Raises :class:`CheckpointError` (a ``ValueError``) if a checkpoint belongs to a different run (other
    seed, problems or their content, task, N, K, sampling, templates or model), or cannot be read or has
    the wrong shape (truncated, not JSON, wrong fields or types, a directory): a resume never mixes runs
    and never silently recomputes over a file it cannot read; the message says which file to delete.
    """
    pops = []
    n_problems, n = len(fingerprint["problems"]), fingerprint["N"]
    for t in range(1, max_steps + 1):
        path = checkpoint_path(directory, label, t)
        if not path.exists():
            break
        fix = f"delete {path} to recompute step {t} (and the steps after it), or use another checkpoint_dir"
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e)[:120]}); {fix}") from None
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT or data.get("step") != t:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise CheckpointError(f"{path} is not an RSA checkpoint of step {t} in format {CHECKPOINT_FORMAT} "
                                  f"(found {str(found)[:80]!r}); {fix}")
        stored = data.get("fingerprint")
        if not isinstance(stored, dict):
            raise CheckpointError(f"checkpoint {path} has no run fingerprint; {fix}")
        if stored != fingerprint:
            diff = sorted(k for k in set(fingerprint) | set(stored) if fingerprint.get(k) != stored.get(k))
            raise CheckpointError(f"checkpoint {path} belongs to a different run (differs in {diff}); "
                                  "use another checkpoint_dir or resume=False")
        problem = _population_problem(data.get("population"), n_problems, n)
        if problem:
            raise CheckpointError(f"checkpoint {path} is malformed: {problem}; {fix}")
        pops.append(data["population"])
    return pops


# ------------------------------------------------------------------------------------- RSA
def _with_cumulative(steps: list[dict], n_problems: int) -> list[dict]:
    cp = cc = 0
    for t, m in enumerate(steps, 1):
        cp += m["prompt_tokens"]
        cc += m["completion_tokens"]
        m.update(step=t, cum_prompt_tokens=cp, cum_completion_tokens=cc)
    return steps


def run_rsa(llm, task: Task, problems: Sequence[Problem] | None = None, *, n: int, k: int, t: int,
            sampling: SamplingParams, seed: int, templates: dict | None = None, threshold: float = 1.0,
            k1_parent: str = "uniform", initial: list[list[dict]] | None = None,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, label: str | None = None,
            progress: bool = True) -> dict:
    """Run RSA on ``problems`` (default: all of ``task``). Returns plain data:

    ``{"K", "N", "T", "label", "steps": [metrics of step 1..T averaged over problems],
    "per_problem": [[metrics] per problem] per step, "populations": [[[candidate] * N] per problem] per step,
    "llm_calls": model calls made by this run (resumed steps make none)}``.

    ``initial``: a first generation already sampled with :func:`generate_initial` (same seeds, so the
    same draws) to share between runs; shape (problems, >= N), the first N are used.
    """
    problems = list(task.problems if problems is None else problems)
    if not problems:
        raise ValueError("no problems to run")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= K <= N, got K={k}, N={n}")
    if t < 1:
        raise ValueError(f"T must be >= 1, got {t}")
    if resume and not checkpoint_dir:
        raise ValueError("resume=True needs checkpoint_dir")
    templates = templates or P.load_templates()
    label = label or f"rsa_k{k}"
    fp = _fingerprint(llm, problems, n, k, k1_parent, sampling, seed, templates, threshold, label, task)
    pops: list[list[list[dict]]] = load_checkpoints(checkpoint_dir, label, fp, t) if resume else []
    calls = 0
    bar = tqdm(total=t, desc=f"{label} (N={n}, K={k})", disable=not progress, initial=len(pops))
    for step in range(len(pops) + 1, t + 1):
        if step == 1:
            if initial is not None:
                if len(initial) != len(problems) or any(len(x) < n for x in initial):
                    raise ValueError("initial population must have shape (problems, >= N)")
                pop = [[dict(c) for c in row[:n]] for row in initial]
            else:
                pop = generate_initial(llm, task, problems, n, sampling, seed=seed, templates=templates,
                                       threshold=threshold)
                calls += 1
        else:
            prev = pops[-1]
            prompts, seeds, parents = [], [], []
            for pi, p in enumerate(problems):
                for slot, subset in enumerate(draw_subsets(seed, p.id, step, n, k, k1_parent)):
                    cands = [prev[pi][j]["text"] for j in subset]
                    prompts.append(P.aggregate_prompt(templates, p.question, cands, task.format_hint, task.problem_kind))
                    seeds.append(derive_seed(seed, "rsa", p.id, step, slot))
                    parents.append(subset)
            comps = llm.generate(prompts, sampling.replace(n=1), seeds=seeds)  # ONE call for the whole step
            calls += 1
            pop = [[_from_completion(comps[pi * n + s], task, p, threshold, parents[pi * n + s]) for s in range(n)]
                   for pi, p in enumerate(problems)]
        pops.append(pop)
        if checkpoint_dir:
            save_checkpoint(checkpoint_dir, label, step, fp, pop)
        bar.update(1)
    bar.close()
    per_problem = [[population_metrics(pop[pi], _equiv(task, p)) for pi, p in enumerate(problems)] for pop in pops]
    steps = _with_cumulative([average_metrics(pp) for pp in per_problem], len(problems))
    for m, pp in zip(steps, per_problem):
        m["accuracy"] = m["mean_acc"]
        m["accuracy_lenient"] = m["mean_acc_lenient"]
        m["generations"] = n * m["step"]
        for key in ("mean_acc", "majority_acc", "mean_acc_lenient"):  # over problems
            m[key + "_se"] = standard_error([x[key] for x in pp])
    return {"label": label, "N": n, "K": k, "T": t, "steps": steps, "per_problem": per_problem,
            "populations": pops, "llm_calls": calls}


# ------------------------------------------------------------------------------- baselines
def majority_vote_baseline(task: Task, problems: Sequence[Problem], pool: list[list[dict]], n: int, t: int) -> dict:
    """Majority voting over N*t independent samples for t = 1..T (the first N*t of ``pool``)."""
    if any(len(row) < n * t for row in pool):
        raise ValueError(f"majority voting at T={t} needs {n * t} samples per problem")
    steps = []
    for s in range(1, t + 1):
        pp = [population_metrics(row[:n * s], _equiv(task, p)) for row, p in zip(pool, problems)]
        m = average_metrics(pp)
        m.update(step=s, accuracy=m["majority_acc"], accuracy_lenient=m["majority_acc_lenient"], generations=n * s,
                 cum_prompt_tokens=m["prompt_tokens"], cum_completion_tokens=m["completion_tokens"],
                 accuracy_se=standard_error([x["majority_acc"] for x in pp]),
                 per_problem_accuracy=[x["majority_acc"] for x in pp])
        steps.append(m)
    return {"label": "majority_vote", "steps": steps}


def best_of_n_verify_baseline(llm, task: Task, problems: Sequence[Problem], pool: list[list[dict]], n: int, t: int,
                              sampling: SamplingParams, *, seed: int, templates: dict, verify_max_tokens: int = 8,
                              structured: bool = False) -> dict:
    """Best-of-m with self-verification at matched budgets: at step s the budget N*s is split into
    m = max(1, N*s // 2) candidates (the first m of ``pool``) and m verification calls (one batched call).
    Verdicts are read by :func:`~workbench.rsa.answers.parse_verdict` (the last True/False); with
    ``structured`` the verdict is constrained to exactly ``True`` or ``False``. The selected answer is
    the strict majority among candidates judged True (all candidates when none is); the lenient variant
    does the same with the lenient readings."""
    m_max = max(1, (n * t) // 2)
    if any(len(row) < m_max for row in pool):
        raise ValueError(f"best-of-n needs {m_max} samples per problem")
    prompts, seeds = [], []
    for row, p in zip(pool, problems):
        for j in range(m_max):
            prompts.append(P.verify_prompt(templates, p.question, row[j]["text"], task.format_hint, task.problem_kind))
            seeds.append(derive_seed(seed, "verify", p.id, j))
    comps = llm.generate(prompts, sampling.replace(n=1, max_tokens=verify_max_tokens,
                                                   structure=VERDICT_STRUCTURE if structured else None), seeds=seeds)
    verdicts = [[parse_verdict(comps[i * m_max + j].text) for j in range(m_max)] for i in range(len(problems))]
    vtok = [[(comps[i * m_max + j].prompt_tokens, comps[i * m_max + j].completion_tokens) for j in range(m_max)]
            for i in range(len(problems))]
    steps = []
    for s in range(1, t + 1):
        m = max(1, (n * s) // 2)
        acc, lacc, vacc, vun, pt, ct = [], [], [], 0, 0, 0
        for i, (row, p) in enumerate(zip(pool, problems)):
            cands, ver = row[:m], verdicts[i][:m]
            ok = [j for j in range(m) if ver[j] is True]
            pick_from = ok if ok else list(range(m))
            w = majority_vote([cands[j]["answer"] for j in pick_from], _equiv(task, p))
            acc.append(float(w is not None and cands[pick_from[w]]["correct"]))
            lw = majority_vote([cands[j].get("answer_lenient", cands[j]["answer"]) for j in pick_from], _equiv(task, p))
            lacc.append(float(lw is not None and cands[pick_from[lw]].get("correct_lenient", cands[pick_from[lw]]["correct"])))
            judged = [(v, c["correct"]) for v, c in zip(ver, cands) if v is not None]
            vacc.append(sum(v == c for v, c in judged) / len(judged) if judged else 0.0)
            vun += sum(v is None for v in ver)
            pt += sum(c["prompt_tokens"] for c in cands) + sum(x[0] for x in vtok[i][:m])
            ct += sum(c["completion_tokens"] for c in cands) + sum(x[1] for x in vtok[i][:m])
        steps.append({"step": s, "accuracy": sum(acc) / len(acc), "accuracy_lenient": sum(lacc) / len(lacc),
                      "accuracy_se": standard_error(acc), "per_problem_accuracy": acc,
                      "verify_acc": sum(vacc) / len(vacc), "verify_unparsed": vun,
                      "verify_unparsed_frac": vun / (m * len(problems)), "candidates": m, "generations": 2 * m,
                      "cum_prompt_tokens": pt, "cum_completion_tokens": ct})
    return {"label": "best_of_n_verify", "steps": steps, "verdicts": verdicts}


# ------------------------------------------------------------------------------------- run
def structure_on(cfg: Config, llm=None) -> bool:
    """Whether ``cfg.structured`` turns structured outputs on: "on", "off", or "auto" = on for the
    embedded model (backend ``default``), off otherwise (a full-scale model follows the format unaided,
    and a short reasoning bound would cut its thinking; use "on" with a larger ``max_reasoning_chars``)."""
    if cfg.structured != "auto":
        return cfg.structured == "on"
    spec = getattr(llm, "spec", None) or cfg.backend
    return str(spec).split("?", 1)[0].split(":", 1)[0] == "default"


def _method_row(steps: list[dict]) -> dict:
    last = steps[-1]
    return {"accuracy": last["accuracy"], "accuracy_lenient": last.get("accuracy_lenient"),
            "accuracy_se": last.get("accuracy_se", last.get("mean_acc_se"))}


def _parse_shares(populations: list) -> list[dict]:
    """Per step: shares of candidates parsed strictly, only leniently, not at all, and truncated."""
    out = []
    for t, pop in enumerate(populations, 1):
        cands = [c for row in pop for c in row]
        n = len(cands)
        out.append({"step": t, "n": n, **{f"{cat}_frac": sum(c["category"] == cat for c in cands) / n
                                          for cat in PARSE_CATEGORIES},
                    "truncated_frac": sum(c["truncated"] for c in cands) / n})
    return out


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean of ``a - b`` over paired problems and its standard error.

    >>> paired_difference([1.0, 0.5, 0.0], [0.0, 0.5, 0.0])["diff"]
    0.3333333333333333
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"paired difference needs two equal, non-empty lists (got {len(a)} and {len(b)})")
    d = [x - y for x, y in zip(a, b)]
    return {"diff": sum(d) / len(d), "se": standard_error(d), "n_problems": len(d)}


def run(cfg: Config, llm=None, *, task: Task | None = None, progress: bool = True) -> dict:
    """Run RSA, the budget-matched baselines and the K sweep of ``cfg``. Returns plain data (see notebook).

    Accuracies are strict (the authors' extraction, :mod:`workbench.rsa.answers`); every method's steps
    also carry the lenient variant (``accuracy_lenient``), and ``parse_shares`` gives, per method and
    step, the shares parsed strictly, only leniently, not at all, and truncated by the token budget.
    ``comparisons``: RSA's final mean accuracy minus each baseline's final accuracy, paired over
    problems, with its standard error (same budget: N*T generations per problem)."""
    if llm is None:
        from ..llm import load_llm

        llm = load_llm(cfg.backend)
    task = task or make_task(cfg)
    problems = task.problems
    templates = P.load_templates(cfg.templates)
    structured = structure_on(cfg, llm)
    structure = (answer_structure(task, problems, cfg.max_reasoning_chars, cfg.answer_pattern, cfg.reasoning)
                 if structured else None)
    sampling = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
                              structure=structure)
    n, k, t = cfg.population, cfg.subset_size, cfg.steps
    pool_size = n
    if "majority_vote" in cfg.baselines:
        pool_size = max(pool_size, n * t)
    if "best_of_n_verify" in cfg.baselines:
        pool_size = max(pool_size, (n * t) // 2)
    common = dict(sampling=sampling, seed=cfg.seed, templates=templates, threshold=cfg.correct_threshold)
    # One batched call for every independent sample (RSA's first generation and the baselines' pools
    # are the same seeded draws, so they are generated once and shared).
    pool = generate_initial(llm, task, problems, pool_size, sampling, seed=cfg.seed, templates=templates,
                            threshold=cfg.correct_threshold)
    ckpt = cfg.checkpoint_dir or None
    rsa = run_rsa(llm, task, problems, n=n, k=k, t=t, k1_parent=cfg.k1_parent, initial=pool, checkpoint_dir=ckpt,
                  resume=cfg.resume, progress=progress, **common)
    baselines: dict[str, Any] = {}
    if "majority_vote" in cfg.baselines:
        baselines["majority_vote"] = majority_vote_baseline(task, problems, pool, n, t)
    if "best_of_n_verify" in cfg.baselines:
        baselines["best_of_n_verify"] = best_of_n_verify_baseline(
            llm, task, problems, pool, n, t, sampling, seed=cfg.seed, templates=templates,
            verify_max_tokens=cfg.verify_max_tokens, structured=structured)
    if "self_refine" in cfg.baselines:
        sr = run_rsa(llm, task, problems, n=n, k=1, t=t, k1_parent="self", initial=pool, checkpoint_dir=ckpt,
                     resume=cfg.resume, label="self_refine", progress=progress, **common)
        for m, pp in zip(sr["steps"], sr["per_problem"]):
            m["per_problem_accuracy"] = [x["mean_acc"] for x in pp]
        baselines["self_refine"] = {"label": "self_refine", "steps": sr["steps"], "populations": sr["populations"]}
    sweep: dict[str, Any] = {}
    for kk in sorted(set(cfg.k_sweep) | {k}):
        if kk == k:
            sweep[str(kk)] = {"steps": rsa["steps"]}
            continue
        r = run_rsa(llm, task, problems, n=n, k=kk, t=t, k1_parent=cfg.k1_parent, initial=pool, checkpoint_dir=ckpt,
                    resume=cfg.resume, progress=progress, **common)
        sweep[str(kk)] = {"steps": r["steps"]}
    parse_counts = Counter(c["parse"] or "unparsed" for pop in rsa["populations"] for row in pop for c in row)
    shares = {"rsa": _parse_shares(rsa["populations"]),
              "independent_samples": _parse_shares([pool])[0] | {"step": None, "samples_per_problem": pool_size}}
    if "self_refine" in baselines:
        shares["self_refine"] = _parse_shares(baselines["self_refine"]["populations"])
    rsa_final = [x["mean_acc"] for x in rsa["per_problem"][-1]]
    comparisons = {f"rsa_minus_{name}": paired_difference(rsa_final, b["steps"][-1]["per_problem_accuracy"])
                   for name, b in baselines.items()}
    comparisons["rsa_final_minus_step1"] = paired_difference(rsa_final, [x["mean_acc"] for x in rsa["per_problem"][0]])
    last = rsa["steps"][-1]
    summary = {
        "rsa": {"mean_acc_step1": rsa["steps"][0]["mean_acc"], "mean_acc_step1_se": rsa["steps"][0]["mean_acc_se"],
                "mean_acc_final": last["mean_acc"], "mean_acc_final_se": last["mean_acc_se"],
                "mean_acc_final_lenient": last["mean_acc_lenient"],
                "majority_acc_final": last["majority_acc"], "pass_at_n_step1": rsa["steps"][0]["pass_at_n"],
                "pass_at_n_final": last["pass_at_n"], "distinct_final": last["distinct_answers"],
                "strict_frac": sum(x["strict_frac"] for x in shares["rsa"]) / t,
                "lenient_only_frac": sum(x["lenient_only_frac"] for x in shares["rsa"]) / t,
                "unparsed_frac": sum(x["unparsed_frac"] for x in shares["rsa"]) / t,
                "truncated_frac": sum(x["truncated_frac"] for x in shares["rsa"]) / t},
        "baselines": {name: b["steps"][-1]["accuracy"] for name, b in baselines.items()},
        "baselines_lenient": {name: b["steps"][-1]["accuracy_lenient"] for name, b in baselines.items()},
        "comparisons": {name: {"diff": c["diff"], "se": c["se"]} for name, c in comparisons.items()},
        "k_sweep_final_mean_acc": {f"K{kk}": v["steps"][-1]["mean_acc"] for kk, v in sweep.items()},
    }
    return {
        "config": asdict(cfg),
        "task": {"name": task.name, "n_problems": len(problems), "format_hint": task.format_hint,
                 "problems": [p.to_dict() for p in problems],
                 "malformed": [asdict(m) for m in getattr(task, "malformed", [])]},
        "backend": {"spec": getattr(llm, "spec", None), "model": getattr(llm, "model", None)},
        "structure": structure.to_key() if structure is not None else None,
        "rsa": rsa, "baselines": baselines, "k_sweep": sweep, "parse_counts": dict(parse_counts),
        "parse_shares": shares, "comparisons": comparisons, "summary": summary,
    }
