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

Sandbox (:func:`run_programs`). Every candidate run is a fresh ``python -I`` (isolated mode: no
environment variables read, no user site, script directory not on ``sys.path``) subprocess in its own
temporary directory (its cwd, ``HOME`` and ``TMPDIR``; the code and the stdio files sit one level up, where
the program cannot write, and the parent reads output through its own descriptors), started with ``start_new_session`` (its own
process group) and ``resource`` limits set in ``preexec_fn``: ``RLIMIT_CPU`` (CPU seconds),
``RLIMIT_AS`` (address space), ``RLIMIT_FSIZE`` (largest file it may write: stdout and stderr go to files,
so this is also the output cap), ``RLIMIT_CORE`` = 0, and ``RLIMIT_NPROC``. A wall-clock deadline
SIGKILLs the whole process group; after every run, even a normal exit, the group is SIGKILLed before the
leader is reaped (the leader's pid holds the group id until then, so no unrelated group can be hit).
The environment is minimal (``PATH``, ``LANG``, ``HOME``, ``TMPDIR``, one-thread BLAS variables): no
inherited tokens, keys or proxy variables. Programs run concurrently in a bounded pool
(``SandboxLimits.max_workers``) managed by one thread that polls the children (no threads, so
``preexec_fn`` never runs beside other threads of ours).

``RLIMIT_NPROC`` counts every process of the user id, and the kernel ignores it for root. So when we
run as root (``run_as="auto"``), programs are run as the unprivileged user ``nobody`` (``setgid``/
``setuid`` in ``preexec_fn``) with an interpreter that user can execute, and ``nproc`` bounds the
processes of that user (shared by the concurrently running sandboxes). As a normal user, programs run
as that user and the limit is set to the user's current process count plus ``nproc`` (approximate: the
count is read once per pool).

What this does NOT protect against (it is resource hygiene, **not a security boundary** like a
container): network access (sockets are allowed), reading any file the run-as user may read (the whole
world-readable filesystem), writing to world-writable places such as ``/tmp`` (up to ``RLIMIT_FSIZE`` per
file), a program that calls ``setsid`` to leave its process group (its children then escape the group
kill, though CPU/memory limits still apply to each), kernel exploits, and side channels. For untrusted
code at full scale run the harness in a container or jail with no network and a read-only root (e.g.
Docker/gVisor with ``--network none``, nsjail or firejail, or a disposable VM), as LiveCodeBench's own
harness recommends.

Loaders: :func:`load_livecodebench` (HF ``livecodebench/code_generation_lite``, release tag and contest
date window, as LiveCodeBench selects problems against contamination) and :func:`load_code_jsonl`
(local ``{"id", "question", "tests": [{"input", "output"}]}`` lines, optional ``"fn_name"``, ``"starter_code"``
and per-test ``"testtype": "functional"`` for call-based problems). Items that cannot become a problem
are kept in ``task.malformed`` with a reason, never silently dropped.

Functional (call-based, LeetCode) tests: each input line is one JSON argument, the expected output one
JSON value. The program runs inside a driver (:func:`call_driver`) in the same sandbox: a standard-library
import preamble (reconstruction), the candidate code, then ``Solution().<fn_name>(*args)`` (or a top-level
function), whose result is printed as JSON and compared as a JSON value (:func:`call_result_matches`).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import pickle
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from collections import deque
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tqdm.auto import tqdm

from .base import MalformedItem, Problem, Task
from .loaders import iter_jsonl

CODE_FORMAT_HINT = ("a single ```python code block holding your complete solution: a program that reads the input "
                    "from standard input and prints the answer to standard output, or, when starter code is given, "
                    "that code completed")

# Call-based (LeetCode) tests: names LeetCode solutions use without importing them. Reconstruction: our own
# list of the usual standard-library names, in the spirit of LiveCodeBench's import preamble.
CALL_PREAMBLE = ("from typing import *\nimport bisect, collections, functools, heapq, itertools, math, re, string\n"
                 "from bisect import *\nfrom collections import *\nfrom functools import *\nfrom heapq import *\n"
                 "from itertools import *\nfrom math import *\n")


def call_driver(code: str, fn_name: str) -> str:
    """A program that runs ``code`` (prints sent to stderr), calls ``Solution().<fn_name>`` (or a top-level
    ``fn_name``) with one JSON value per stdin line as arguments, and prints the result as JSON."""
    return (
        "import contextlib as _c, json as _j, sys as _s\n"
        f"_src = {CALL_PREAMBLE + chr(10) + code!r}\n"
        "_ns = {'__name__': 'solution'}\n"
        "with _c.redirect_stdout(_s.stderr):\n"
        "    exec(compile(_src, 'solution.py', 'exec'), _ns)\n"
        "    _args = [_j.loads(_l) for _l in _s.stdin.read().split('\\n') if _l.strip()]\n"
        f"    _f = getattr(_ns['Solution'](), {fn_name!r}) if 'Solution' in _ns else _ns[{fn_name!r}]\n"
        "    _r = _f(*_args)\n"
        "_s.stdout.write(_j.dumps(_r))\n")


def call_result_matches(got: str, expected: str) -> bool:
    """Call-based judging: the printed JSON result equals the expected JSON value (tuples as lists).

    >>> call_result_matches("[1, 2]", "[1,2]"), call_result_matches("3", "3.0"), call_result_matches("x", "1")
    (True, True, False)
    """
    try:
        return json.loads(got) == json.loads(expected)
    except (json.JSONDecodeError, ValueError):
        return False


STATUSES = ("ok", "error", "timeout", "cpu_limit", "memory", "output_limit", "killed")


# ------------------------------------------------------------------------------------ sandbox
@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandboxed program run."""

    timeout_s: float = 4.0
    """wall-clock seconds per run; then the whole process group is SIGKILLed"""
    cpu_s: int = 2
    """RLIMIT_CPU seconds (soft; the hard limit is one more); SIGXCPU ends the run"""
    memory_mb: int = 512
    """RLIMIT_AS in MiB (address space, not resident memory)"""
    output_bytes: int = 1_000_000
    """RLIMIT_FSIZE: largest file the program may write; stdout and stderr are files, so also the output cap"""
    nproc: int = 32
    """processes the run-as user may have beyond the current ones (RLIMIT_NPROC; see module docstring)"""
    max_workers: int = 2
    """programs run at the same time"""
    run_as: str | int | None = "auto"
    """user to run programs as: 'auto' = 'nobody' when we are root (else ourselves), a name, a uid, or None"""
    python: str | None = None
    """interpreter; None = this one, or when it cannot be run by the run-as user, /usr/bin/python3"""

    def __post_init__(self):
        for name in ("timeout_s", "cpu_s", "memory_mb", "output_bytes", "max_workers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SandboxLimits.{name} must be > 0, got {getattr(self, name)!r}")
        if self.nproc < 1:
            raise ValueError(f"SandboxLimits.nproc must be >= 1, got {self.nproc!r}")


@dataclass
class RunResult:
    """What one sandboxed run did. ``status`` is one of :data:`STATUSES`."""

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _resolve_user(run_as) -> tuple[int, int] | None:
    """(uid, gid) to switch to, or None to stay as we are."""
    if run_as is None:
        return None
    auto = run_as == "auto"
    if auto:
        if os.geteuid() != 0:
            return None
        run_as = "nobody"
    import pwd

    try:
        pw = pwd.getpwuid(run_as) if isinstance(run_as, int) else pwd.getpwnam(run_as)
    except KeyError:
        if auto:
            warnings.warn("running as root and no user 'nobody' exists: sandboxed programs run as root, where "
                          "RLIMIT_NPROC does not apply (fork bombs are only stopped by the wall-clock kill)")
            return None
        raise ValueError(f"SandboxLimits.run_as: no such user {run_as!r}") from None
    if pw.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise ValueError(f"SandboxLimits.run_as={run_as!r} needs root to switch user; use run_as=None")
    return pw.pw_uid, pw.pw_gid


def _world_executable(path: str) -> bool:
    """Whether a user with no special rights can execute ``path`` (every parent directory searchable)."""
    real = Path(os.path.realpath(path))
    try:
        if not real.stat().st_mode & 0o005 == 0o005:
            return False
        return all(p.stat().st_mode & 0o001 for p in real.parents)
    except OSError:
        return False


def _resolve_python(limits: SandboxLimits, user) -> str:
    if limits.python:
        cands = [limits.python]
    else:
        cands = [sys.executable, getattr(sys, "_base_executable", ""), shutil.which("python3") or "",
                 "/usr/bin/python3"]
    cands = [c for c in cands if c and os.path.exists(c)]
    if user is None and cands:
        return cands[0]
    for c in cands:
        if _world_executable(c):
            return c
    raise RuntimeError(f"no Python interpreter that user id {user[0] if user else '?'} can execute among {cands}; "
                       "set SandboxLimits.python or SandboxLimits.run_as=None")


def _own_process_count() -> int:
    uid = os.getuid()
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


def _limiter(limits: SandboxLimits, user, nproc: int | None):
    """The ``preexec_fn``: runs in the child between fork and exec. Only async-safe-ish work here."""
    mem = limits.memory_mb * 1024 * 1024
    cpu = int(limits.cpu_s)

    def apply():
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if user is not None:
            os.setgroups([])
            os.setgid(user[1])
            os.setuid(user[0])

    return apply


def _env(workdir: str) -> dict[str, str]:
    # minimal on purpose: nothing inherited (no tokens, keys, proxies); python -I ignores PYTHON* anyway
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": workdir,
            "TMPDIR": workdir, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _exited(pid: int) -> bool:
    """Whether the child has exited, WITHOUT reaping it (its pid keeps reserving the group id)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid == pid


def _classify(rc: int | None, timed_out: bool, stderr: str, out_size: int, limits: SandboxLimits) -> str:
    if timed_out:
        return "timeout"
    if rc == 0:
        return "ok"
    if rc == -signal.SIGXFSZ or (out_size >= limits.output_bytes and rc != 0):
        return "output_limit"
    if rc == -signal.SIGXCPU:
        return "cpu_limit"
    if "MemoryError" in stderr or rc == -signal.SIGSEGV and "Cannot allocate memory" in stderr:
        return "memory"
    if rc is not None and rc < 0:
        return "killed"
    return "error"


def run_programs(jobs: Sequence[tuple[str, str]], limits: SandboxLimits | None = None, *,
                 progress: bool = False, desc: str = "running programs") -> list[RunResult]:
    """Run each ``(code, stdin)`` job in its own sandboxed subprocess, at most ``limits.max_workers``
    at a time. Returns one :class:`RunResult` per job, in order. See the module docstring.
    """
    limits = limits or SandboxLimits()
    user = _resolve_user(limits.run_as)
    python = _resolve_python(limits, user)
    if user is not None:
        nproc = limits.nproc
    elif os.geteuid() != 0:
        nproc = _own_process_count() + limits.nproc + limits.max_workers
    else:
        nproc = None  # root staying root: the kernel ignores RLIMIT_NPROC, so do not pretend
    results: list[RunResult | None] = [None] * len(jobs)
    pending = deque(range(len(jobs)))
    running: dict[int, tuple] = {}  # job -> (Popen, start, deadline, sandbox dir, stdout file, stderr file)
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress or len(jobs) == 0)

    def start(i: int):
        code, stdin = jobs[i]
        if not isinstance(code, str) or not isinstance(stdin, str):
            raise TypeError(f"job {i}: code and stdin must be str, got {type(code).__name__}, {type(stdin).__name__}")
        # layout: <box>/ (ours, not writable by the program) holds main.py and the stdio files;
        # <box>/work/ (the program's, its cwd, HOME and TMPDIR) is the only place it owns. So a program
        # cannot replace its own or a concurrently running program's code or output files.
        box = tempfile.mkdtemp(prefix="wb_sandbox_")
        work = os.path.join(box, "work")
        os.mkdir(work)
        prog = Path(box) / "main.py"
        prog.write_text(code)
        (Path(box) / "stdin.txt").write_text(stdin)
        if user is not None:
            os.chmod(box, 0o711)
            os.chmod(prog, 0o644)
            os.chown(work, *user)
        # stdin/stdout/stderr are files opened here (as us) and inherited: no pipes to drain, and the
        # output cap is RLIMIT_FSIZE itself. The parent keeps its own descriptors and reads through them,
        # never by path: the program may rename or replace files in its directory (e.g. by a symlink).
        fout = open(Path(box) / "stdout.txt", "w+b")
        ferr = open(Path(box) / "stderr.txt", "w+b")
        with open(Path(box) / "stdin.txt", "rb") as fin:
            try:
                p = subprocess.Popen([python, "-I", str(prog)], stdin=fin, stdout=fout, stderr=ferr, cwd=work,
                                     env=_env(work), start_new_session=True, close_fds=True,
                                     preexec_fn=_limiter(limits, user, nproc))
            except BaseException:
                fout.close()
                ferr.close()
                shutil.rmtree(box, ignore_errors=True)
                raise
        now = time.monotonic()
        running[i] = (p, now, now + limits.timeout_s, box, fout, ferr)

    def read(f, cap: int) -> tuple[str, int]:
        size = os.fstat(f.fileno()).st_size
        f.seek(0)
        data = f.read(cap)
        f.close()
        return data.decode("utf-8", errors="replace"), size

    def finish(i: int, timed_out: bool):
        p, t0, _, box, fout, ferr = running.pop(i)
        _killpg(p.pid)  # whole group, before the leader is reaped
        rc = p.wait()
        wall = time.monotonic() - t0
        stdout, out_size = read(fout, limits.output_bytes)
        stderr, _ = read(ferr, 20_000)
        shutil.rmtree(box, ignore_errors=True)  # does not follow symlinks
        results[i] = RunResult(_classify(rc, timed_out, stderr, out_size, limits), rc, stdout, stderr, wall)
        bar.update(1)

    try:
        while pending or running:
            while pending and len(running) < limits.max_workers:
                start(pending.popleft())
            now = time.monotonic()
            for i in list(running):
                p, _, deadline = running[i][:3]
                if _exited(p.pid):
                    finish(i, False)
                elif now > deadline:
                    finish(i, True)
            if running:
                time.sleep(0.003)
    finally:  # on an exception (or KeyboardInterrupt) leave nothing running behind
        for i in list(running):
            p, _, _, box, fout, ferr = running.pop(i)
            _killpg(p.pid)
            p.wait()
            fout.close()
            ferr.close()
            shutil.rmtree(box, ignore_errors=True)
        bar.close()
    return results  # type: ignore[return-value]


def run_program(code: str, stdin: str = "", limits: SandboxLimits | None = None) -> RunResult:
    """One sandboxed run (see :func:`run_programs`)."""
    return run_programs([(code, stdin)], limits)[0]


# ---------------------------------------------------------------------------- judging helpers
def _stripped_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.strip().split("\n")]


def _as_decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(tok) for tok in line.split()]
    except (InvalidOperation, ValueError):
        return None


def outputs_match(got: str, expected: str) -> bool:
    """LiveCodeBench's stdin comparison (see the module docstring).

    >>> outputs_match("3 4  \\n", "3 4"), outputs_match("1.0 2\\n", "1 2.00"), outputs_match("3\\n4", "3 4")
    (True, True, False)
    """
    a, b = _stripped_lines(got), _stripped_lines(expected)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        dx, dy = _as_decimals(x), _as_decimals(y)
        if dx is None or dy is None or dx != dy:
            return False
    return True


def normalise_output(text: str) -> str:
    """Output as compared: stripped lines joined (used to compare two programs' outputs)."""
    return "\n".join(_stripped_lines(text))


def extract_code(text: str | None) -> tuple[str | None, str | None]:
    """The last fenced ```python block, else the last fenced block, with the method used.

    >>> extract_code("a\\n```python\\nprint(1)\\n```\\nb\\n```python\\nprint(2)\\n```\\n")
    ('print(2)', 'python_block')
    >>> extract_code("```\\nx = 1\\n```"), extract_code("no code")
    (('x = 1', 'code_block'), (None, None))
    """
    if not text:
        return None, None
    blocks = re.findall(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", text, flags=re.DOTALL)
    py = [b for lang, b in blocks if lang.lower() in ("python", "python3", "py")]
    if py and py[-1].strip():
        return py[-1].strip("\n"), "python_block"
    if blocks and blocks[-1][1].strip():
        return blocks[-1][1].strip("\n"), "code_block"
    return None, None


def normalise_code(code: str) -> str:
    """Code text without comments, blank lines and trailing whitespace (uses ``tokenize``; falls back to a
    line filter when the code does not tokenize).

    >>> normalise_code("x = 1  # one\\n\\n\\nprint(x)   \\n") == normalise_code("x = 1\\nprint(x)")
    True
    """
    import tokenize

    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type != tokenize.COMMENT]
        code = tokenize.untokenize(toks)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return "\n".join(ln.rstrip() for ln in code.splitlines() if ln.strip())


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
        """Per test: status, passed, and the first 200 characters of output and stderr."""
        if code is None:
            return []
        return [{"status": r.status, "passed": self.passed(r, t),
                 "stdout": r.stdout[:200], "stderr": r.stderr[-200:]}
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


def check_tests(tests: Any, where: str = "", fn_name: str | None = None) -> list[dict]:
    """Validate ``{"input": str, "output": str[, "testtype": "stdin" | "functional"]}`` test cases (functional
    ones need ``fn_name``); raises ``ValueError`` naming the fault. Returns them normalised."""
    if not isinstance(tests, list) or not tests:
        raise ValueError(f"{where}: 'tests' must be a non-empty list of {{'input', 'output'}} objects")
    out = []
    for j, t in enumerate(tests):
        if not isinstance(t, Mapping) or not isinstance(t.get("input"), str) or not isinstance(t.get("output"), str):
            raise ValueError(f"{where}: test #{j} must be an object with string 'input' and 'output', got {repr(t)[:120]}")
        kind = t.get("testtype", "stdin")
        if kind not in ("stdin", "functional"):
            raise ValueError(f"{where}: test #{j} has unknown testtype {kind!r} (stdin or functional)")
        if kind == "functional" and not (isinstance(fn_name, str) and fn_name.isidentifier()):
            raise ValueError(f"{where}: test #{j} is functional (call-based) but the problem names no function "
                             "('fn_name')")
        out.append({"input": t["input"], "output": t["output"], "testtype": kind})
    return out


def _finish(problems, bad, source, strict, name, **task_kw) -> CodeTask:
    if bad:
        msg = f"{len(bad)} malformed item(s) in {source}: " + "; ".join(f"#{b.position}: {b.reason}" for b in bad[:5])
        if strict:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=3)
    return CodeTask(problems, name=name, malformed=bad, **task_kw)


# ----------------------------------------------------------------------------------- loaders
def load_code_jsonl(path: str | os.PathLike, *, limit: int | None = None, strict: bool = False,
                    **task_kw) -> CodeTask:
    """Code problems from a local JSONL file, one ``{"id", "question", "tests": [{"input", "output"}]}``
    per line. Bad lines (invalid JSON, missing question, bad tests, duplicate id) are reported in
    ``task.malformed`` with a warning (``strict=True``: raise). ``task_kw`` go to :class:`CodeTask`.
    """
    path = Path(path)
    problems, bad, ids = [], [], set()
    for i, line, r in iter_jsonl(path, limit):
        if isinstance(r, MalformedItem):
            bad.append(r)
            continue
        if not isinstance(r, Mapping):
            bad.append(MalformedItem(str(path), i, f"not an object: {type(r).__name__}", line[:200]))
            continue
        q = r.get("question")
        if not isinstance(q, str) or not q.strip():
            bad.append(MalformedItem(str(path), i, "missing or empty 'question'", line[:200]))
            continue
        pid = str(r["id"]) if r.get("id") is not None else f"{path.stem}/{i}"
        if pid in ids:
            bad.append(MalformedItem(str(path), i, f"duplicate id {pid!r}", line[:200]))
            continue
        try:
            fn = r.get("fn_name")
            tests = check_tests(r.get("tests"), f"line {i}", fn)
        except ValueError as e:
            bad.append(MalformedItem(str(path), i, str(e), line[:200]))
            continue
        ids.add(pid)
        meta = {"tests": tests, **({"fn_name": fn} if fn else {})}
        problems.append(Problem(pid, with_starter(q, r.get("starter_code")), f"{len(tests)} tests",
                                source=str(path), meta=meta))
    return _finish(problems, bad, str(path), strict, path.stem, **task_kw)


LCB_REPO = "livecodebench/code_generation_lite"
# release tag -> data files of the dataset repo (LiveCodeBench adds one file per release)
LCB_FILES = ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl"]


def lcb_files(release: str) -> list[str]:
    """Data files of a LiveCodeBench release tag: ``release_vN`` (cumulative, v1..vN), ``release_latest``
    (all), ``vN`` (that release's new problems only) or ``vA_vB`` (releases A..B). The file names follow the
    dataset repository's loading script (one ``test*.jsonl`` per release).

    >>> lcb_files("release_v2"), lcb_files("v6"), lcb_files("v5_v6")
    (['test.jsonl', 'test2.jsonl'], ['test6.jsonl'], ['test5.jsonl', 'test6.jsonl'])
    """
    n = len(LCB_FILES)
    if release == "release_latest":
        return list(LCB_FILES)
    m = re.fullmatch(r"release_v(\d+)|v(\d+)(?:_v(\d+))?", release)
    if not m:
        raise ValueError(f"unknown LiveCodeBench release {release!r}; use release_v1..release_v{n}, release_latest, "
                         f"v1..v{n} or vA_vB")
    if m.group(1):
        a, b = 1, int(m.group(1))
    else:
        a = int(m.group(2))
        b = int(m.group(3)) if m.group(3) else a
    if not 1 <= a <= b <= n:
        raise ValueError(f"LiveCodeBench release {release!r} out of range v1..v{n}")
    return LCB_FILES[a - 1:b]


def with_starter(question: str, starter: str | None) -> str:
    """The question followed by its starter code, if any (LiveCodeBench shows it to the model)."""
    if not starter or not starter.strip():
        return question
    return f"{question.rstrip()}\n\nComplete this starter code:\n```python\n{starter.strip()}\n```"


class _StringsOnlyUnpickler(pickle.Unpickler):
    # LiveCodeBench stores private tests as base64(zlib(pickle(json string))). Unpickling runs code when a
    # pickle names a global; refusing every global limits it to plain data.
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in LiveCodeBench test data")


def decode_private_tests(blob: str) -> list:
    """LiveCodeBench's private test cases: JSON inside a pickle, zlib-compressed, base64-encoded."""
    data = _StringsOnlyUnpickler(io.BytesIO(zlib.decompress(base64.b64decode(blob)))).load()
    return json.loads(data) if isinstance(data, (str, bytes)) else data


def lcb_problem(r: Mapping[str, Any], source: str) -> Problem:
    """One LiveCodeBench row as a :class:`Problem` (public + private tests); ``ValueError`` if it does not fit."""
    q = r.get("question_content")
    if not isinstance(q, str) or not q.strip():
        raise ValueError("missing question_content")
    pub = r.get("public_test_cases") or "[]"
    tests = json.loads(pub) if isinstance(pub, str) else list(pub)
    priv = r.get("private_test_cases")
    if priv:
        try:
            tests += decode_private_tests(priv) if isinstance(priv, str) else list(priv)
        except Exception as e:
            raise ValueError(f"private tests could not be decoded ({type(e).__name__}: {e})") from None
    md = r.get("metadata") or "{}"
    try:
        fn = (json.loads(md) if isinstance(md, str) else dict(md)).get("func_name")
    except (json.JSONDecodeError, TypeError, ValueError):
        raise ValueError(f"metadata is not a JSON object: {str(md)[:100]}") from None
    tests = check_tests(tests, str(r.get("question_id")), fn)
    meta = {"tests": tests, **{k: r.get(k) for k in ("platform", "contest_date", "difficulty", "question_title")}}
    if fn:
        meta["fn_name"] = fn
    return Problem(str(r.get("question_id")), with_starter(q, r.get("starter_code")), f"{len(tests)} tests",
                   source=source, meta=meta)


def load_livecodebench(release: str = "release_v6", *, start_date: str | None = None, end_date: str | None = None,
                       platforms: Sequence[str] | None = None, limit: int | None = None, strict: bool = False,
                       **task_kw) -> CodeTask:
    """LiveCodeBench problems from the Hugging Face hub (network needed once; files are cached).

    ``start_date``/``end_date`` (``YYYY-MM-DD``, inclusive) keep problems whose ``contest_date`` falls in
    the window, as LiveCodeBench does to evaluate only problems released after a model's cutoff.
    Call-based problems carry ``meta["fn_name"]`` from the row's metadata; starter code is appended to the question.
    """
    files = lcb_files(release)
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ImportError("loading LiveCodeBench needs huggingface_hub: pip install huggingface_hub") from None
    try:
        paths = [hf_hub_download(LCB_REPO, f, repo_type="dataset") for f in files]
    except Exception as e:
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
        raise RuntimeError(
            f"could not load {LCB_REPO!r} ({release}) from the Hugging Face hub ({type(e).__name__}: {str(e)[:200]})."
            + (" HF_HUB_OFFLINE=1 is set: unset it with network access, or" if offline else " Without network,")
            + " write the problems as JSONL lines {\"id\", \"question\", \"tests\": [{\"input\", \"output\"}]} and use "
              "workbench.tasks.code_tasks.load_code_jsonl(path) (task spec codejsonl:<path>).") from e
    problems, bad, pos = [], [], 0
    source = f"hf:{LCB_REPO}@{release}"
    for path in paths:
        with open(path) as f:
            for line in f:
                pos += 1
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    bad.append(MalformedItem(source, pos - 1, f"invalid JSON: {e.msg}", line[:200]))
                    continue
                date = str(r.get("contest_date") or "")[:10]
                if (start_date and date < start_date) or (end_date and date > end_date):
                    continue  # outside the contamination window: selected out, by request
                if platforms and r.get("platform") not in platforms:
                    continue
                try:
                    problems.append(lcb_problem(r, source))
                except (ValueError, json.JSONDecodeError) as e:
                    bad.append(MalformedItem(source, pos - 1, str(e)[:300], str(r.get("question_id"))))
                if limit is not None and len(problems) >= limit:
                    break
        if limit is not None and len(problems) >= limit:
            break
    return _finish(problems, bad, source, strict, f"lcb_{release}", **task_kw)


def make_code_task(spec: str, *, limit: int | None = None) -> CodeTask:
    """Task spec strings: ``lcb:<release>[:<start_date>[:<end_date>]]`` or ``codejsonl:<path>``."""
    kind, _, arg = spec.partition(":")
    if kind == "lcb":
        release, _, window = arg.partition(":")
        start, _, end = window.partition(":")
        return load_livecodebench(release or "release_v6", start_date=start or None, end_date=end or None, limit=limit)
    if kind == "codejsonl":
        if not arg:
            raise ValueError("codejsonl:<path> needs a path")
        return load_code_jsonl(arg, limit=limit)
    raise ValueError(f"not a code task spec: {spec!r}; use lcb:<release>[:<start>[:<end>]] or codejsonl:<path>")


__all__ = ["CODE_FORMAT_HINT", "CALL_PREAMBLE", "call_driver", "call_result_matches", "with_starter", "STATUSES", "SandboxLimits", "RunResult", "run_programs", "run_program",
           "outputs_match", "normalise_output", "extract_code", "normalise_code", "CodeTask", "check_tests",
           "load_code_jsonl", "load_livecodebench", "lcb_files", "decode_private_tests", "lcb_problem",
           "make_code_task"]
