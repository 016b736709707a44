"""LiveCodeBench-style code tasks: programs read stdin, write stdout, and are judged by test cases.

The RSA paper (arXiv 2509.26626) evaluates LiveCodeBench-v6. A :class:`CodeTask` holds problems whose
reference is a list of test cases ``{"input": stdin, "output": expected stdout}`` (LiveCodeBench's
"stdin" test type; call-based "functional" tests are supported too, see below), kept in
``problem.meta["tests"]``.

- :meth:`CodeTask.extract`: the last fenced ```python block of a completion (method ``"python_block"``);
  else the last fenced block of any language (``"code_block"``); else nothing (``(None, None)``, counted
  as unparsed like any task).
- :meth:`CodeTask.score`: 1.0 iff the program passes **every** test (LiveCodeBench's pass@1 convention),
  else 0.0. Output comparison follows LiveCodeBench's stdin grader: both texts are stripped as a whole,
  split on ``"\\n"`` and every line is stripped (leading and trailing whitespace); the line counts must
  match and each line pair must be equal as strings, or else equal as lists of ``Decimal`` numbers after
  splitting the line on whitespace (so ``"1.0 2"`` matches ``"1 2.00"``). See :func:`outputs_match`.
- :meth:`CodeTask.equivalent` (for majority voting; **reconstruction**, the paper does not say how code
  answers are clustered): ``equivalence="outputs"`` (default): two programs are equivalent when they
  produce identical (normalised as above) outputs on every test input of the problem, crashes and
  timeouts compared by their status; ``equivalence="text"``: the cheap alternative, normalised code text
  (comments, blank lines and trailing whitespace removed; see :func:`normalise_code`).

Sandbox (:func:`run_programs`, in :mod:`workbench.tasks.sandbox`): every candidate run is a fresh
``python -I`` subprocess with CPU, address-space, file-size and process limits, a minimal environment and
unnamed stdio files. As root each run gets a uid and gid of its own from a pool of unused ids (61000 and
up), so a program can neither signal nor read another run, and after the run everything that uid owns is
killed before the uid is reused; memory and process counts are bounded for the whole run by a cgroup of
its own where one is available (else ``RLIMIT_AS`` per process and ``RLIMIT_NPROC`` per uid). Each
:class:`RunResult` says which in ``isolation``; :func:`sandbox_isolation` tells without running. It is
resource hygiene plus uid separation, not a security boundary: see :mod:`workbench.tasks.sandbox` for
what it does not isolate (network, world-readable files) and what to use at full scale.

Loaders (in :mod:`workbench.tasks.code_loaders`): :func:`load_livecodebench` (HF ``livecodebench/code_generation_lite``, release tag and contest
date window, as LiveCodeBench selects problems against contamination) and :func:`load_code_jsonl`
(local ``{"id", "question", "tests": [{"input", "output"}]}`` lines, optional ``"fn_name"``, ``"starter_code"``
and per-test ``"testtype": "functional"`` for call-based problems). Items that cannot become a problem
are kept in ``task.malformed`` with a reason, never silently dropped. Private tests are inflated with a
size cap (:func:`decode_private_tests`).

Functional (call-based, LeetCode) tests: each input line is one JSON argument, the expected output one
JSON value. The program runs inside a driver (:func:`call_driver`) in the same sandbox: a standard-library
import preamble (reconstruction), the candidate code, then ``Solution().<fn_name>(*args)`` (or a top-level
function), whose result is printed as JSON and compared as a JSON value (:func:`call_result_matches`).

Layout: :mod:`.sandbox` (running programs), :mod:`.code_judge` (comparison, extraction, normalisation,
test validation), :mod:`.code_loaders` (JSONL and LiveCodeBench); this module holds :class:`CodeTask` and
re-exports the public names of all three, so ``from workbench.tasks.code_tasks import ...`` keeps working.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

from .base import MalformedItem, Problem, Task
from .code_judge import (CALL_PREAMBLE, CODE_FORMAT_HINT, call_driver, call_result_matches, check_tests,
                         extract_code, fenced_blocks, normalise_code, normalise_output, outputs_match)
from .sandbox import STATUSES, RunResult, SandboxLimits, run_program, run_programs, sandbox_isolation


# ---------------------------------------------------------------------------------- the task
class CodeTask(Task):
    """Code-generation problems judged by stdin/stdout tests in a sandbox (see the module docstring).

    Results of running a program on a problem's tests are cached by (problem id, code hash), so scoring,
    equivalence and repeated candidates run each program once. :meth:`evaluate` runs many programs at
    once through the bounded pool; :meth:`score` on a program not yet run runs its tests through the pool.
    """

    name = "code"
    answer_format = "code"
    problem_kind = "programming problem"

    def __init__(self, problems: Sequence[Problem], *, name: str | None = None,
                 malformed: Sequence[MalformedItem] = (), limits: SandboxLimits | None = None,
                 equivalence: str = "outputs", progress: bool = False):
        if equivalence not in ("outputs", "text"):
            raise ValueError(f"equivalence must be 'outputs' or 'text', got {equivalence!r}")
        for p in problems:
            check_tests(p.meta.get("tests"), p.id, p.meta.get("fn_name"))
        super().__init__(problems, name=name, malformed=malformed)
        self.limits = limits or SandboxLimits()
        self.equivalence = equivalence
        self.progress = progress
        self._cache: dict[tuple[str, str], list[RunResult]] = {}

    @property
    def format_hint(self) -> str:
        return CODE_FORMAT_HINT

    def is_numeric(self, problem: Problem) -> bool:
        return False

    def question_prompt(self, problem: Problem) -> str:
        return (f"{problem.question.strip()}\n\nThink step by step, then give your final solution as "
                f"{self.format_hint}.")

    def extract(self, text, problem):
        return extract_code(text)

    @staticmethod
    def _key(code: str, problem: Problem) -> tuple[str, str]:
        return problem.id, hashlib.sha256(code.encode()).hexdigest()

    def evaluate(self, items: Iterable[tuple[str, Problem]]) -> None:
        """Run every ``(code, problem)`` on all of the problem's tests through one bounded pool (cached)."""
        todo, seen = [], set()
        for code, p in items:
            if code is None:
                continue
            k = self._key(code, p)
            if k not in self._cache and k not in seen:
                seen.add(k)
                todo.append((k, code, p))
        jobs = [(self._program(code, p, t), t["input"]) for _, code, p in todo for t in p.meta["tests"]]
        res = run_programs(jobs, self.limits, progress=self.progress, desc=f"{self.name}: tests")
        pos = 0
        for k, _, p in todo:
            n = len(p.meta["tests"])
            self._cache[k] = res[pos:pos + n]
            pos += n

    def run_tests(self, code: str, problem: Problem) -> list[RunResult]:
        """The program's run on each test input of ``problem`` (from the cache when already run)."""
        k = self._key(code, problem)
        if k not in self._cache:
            self.evaluate([(code, problem)])
        return self._cache[k]

    @staticmethod
    def _program(code: str, problem: Problem, test: dict) -> str:
        if test.get("testtype", "stdin") == "functional":
            return call_driver(code, problem.meta["fn_name"])
        return code

    @staticmethod
    def passed(run: RunResult, test: dict) -> bool:
        """Whether one run passes its test (stdin: :func:`outputs_match`; call-based: :func:`call_result_matches`)."""
        if not run.ok:
            return False
        if test.get("testtype", "stdin") == "functional":
            return call_result_matches(run.stdout, test["output"])
        return outputs_match(run.stdout, test["output"])

    def test_report(self, code: str | None, problem: Problem) -> list[dict]:
        """Per test: status, passed, the first 200 characters of output and stderr, and how the run was isolated."""
        if code is None:
            return []
        return [{"status": r.status, "passed": self.passed(r, t),
                 "stdout": r.stdout[:200], "stderr": r.stderr[-200:], "isolation": r.isolation}
                for r, t in zip(self.run_tests(code, problem), problem.meta["tests"])]

    def score(self, answer: str | None, problem: Problem) -> float:
        if answer is None or not answer.strip():
            return 0.0
        runs = self.run_tests(answer, problem)
        return float(all(self.passed(r, t) for r, t in zip(runs, problem.meta["tests"])))

    def _signature(self, code: str, problem: Problem) -> tuple:
        return tuple((r.status, normalise_output(r.stdout) if r.ok else "") for r in self.run_tests(code, problem))

    def equivalent(self, a: str | None, b: str | None, problem: Problem) -> bool:
        if a is None or b is None:
            return False
        if self.equivalence == "text":
            return normalise_code(a) == normalise_code(b)
        return self._signature(a, problem) == self._signature(b, problem)

    def clear_cache(self) -> None:
        self._cache.clear()


# the loaders import CodeTask from here, lazily; re-exported so every old import keeps working
from .code_loaders import (LCB_FILES, LCB_REPO, MAX_PRIVATE_TESTS_BYTES, decode_private_tests,  # noqa: E402
                           inflate_capped, lcb_files, lcb_problem, load_code_jsonl, load_livecodebench,
                           make_code_task, with_starter)

__all__ = ["CODE_FORMAT_HINT", "CALL_PREAMBLE", "call_driver", "call_result_matches", "with_starter", "STATUSES",
           "SandboxLimits", "RunResult", "run_programs", "run_program", "sandbox_isolation", "outputs_match",
           "normalise_output", "fenced_blocks", "extract_code", "normalise_code", "CodeTask", "check_tests",
           "load_code_jsonl", "load_livecodebench", "lcb_files", "LCB_REPO", "LCB_FILES", "decode_private_tests",
           "inflate_capped", "MAX_PRIVATE_TESTS_BYTES", "lcb_problem", "make_code_task"]
