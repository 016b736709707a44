"""workbench.tasks.sandbox and the hardening of code tasks: hostile programs are contained while honest runs
beside them still pass; private-test inflation is capped; code normalisation and fence extraction are total
and linear."""
from __future__ import annotations

import base64
import doctest
import importlib
import json
import os
import pickle
import pwd
import re
import subprocess
import tempfile
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tasks.code_tasks import (CodeTask, SandboxLimits, decode_private_tests, extract_code, fenced_blocks,
                                        lcb_problem, normalise_code, run_programs, sandbox_isolation)
from workbench.tasks.base import Problem
from workbench.tasks.sandbox import _cgroup_parents, _live_pids_of

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="the per-run uid pool needs root")
LIM = SandboxLimits(timeout_s=3.0, cpu_s=2, memory_mb=128, output_bytes=20_000, nproc=48, max_workers=2,
                    reap_timeout_s=3.0)
HONEST = "import time\ntime.sleep(0.8)\nprint(int(input()) * 2)\n"


def honest_ok(r, x: int) -> bool:
    return r.status == "ok" and r.stdout.strip() == str(2 * x)


def alive(pid: int) -> bool:
    """A live (not zombie) process with this pid."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\tZ" not in next(line for line in f if line.startswith("State:"))
    except (OSError, StopIteration):
        return False


def gone(pids, wait_s: float = 2.0) -> bool:
    end = time.monotonic() + wait_s
    while any(alive(p) for p in pids):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


# ------------------------------------------------------------------------------------- identity
@needs_root
def test_each_run_has_its_own_unused_uid():
    res = run_programs([("import os, time\ntime.sleep(0.3)\nprint(os.getuid(), os.getgid(), os.getgroups())", "")] * 2,
                       LIM)
    ids = [r.stdout.split(None, 2) for r in res]
    assert all(r.ok for r in res), [r.stderr for r in res]
    uids = [int(u) for u, _, _ in ids]
    assert uids[0] != uids[1]                                              # concurrent runs: distinct uids
    for (u, g, groups), r in zip(ids, res):
        assert int(u) == int(g) and groups.strip() == "[]" and r.isolation["uid"] == int(u)
        assert LIM.uid_base <= int(u) < LIM.uid_base + LIM.uid_count
        with pytest.raises(KeyError):
            pwd.getpwuid(int(u))                                           # never a uid of a real user
    assert res[0].isolation["identity"] == "uid_pool"


@needs_root
def test_kill_minus_one_does_not_reach_a_concurrent_run():
    hostile = "import os, time\ntime.sleep(0.2)\nos.kill(-1, 9)\nprint('still here')\n"
    res = run_programs([(HONEST, "21\n"), (hostile, "")], LIM)
    assert honest_ok(res[0], 21), (res[0].status, res[0].stderr[-200:])
    assert res[1].ok and res[1].stdout == "still here\n"                  # kill(-1) spares the caller


@needs_root
def test_setsid_leftover_is_killed_before_a_later_run():
    leftover = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                "        print(os.getpid(), flush=True)\n        time.sleep(0.6)\n        os.kill(-1, 9)\n"
                "        time.sleep(30)\n    os._exit(0)\nos.wait()\ntime.sleep(0.1)\n")
    first = run_programs([(leftover, "")], LIM)[0]
    pid = int(first.stdout.split()[0])
    assert gone([pid])                                                     # killed with its run, not later
    later = run_programs([(HONEST, "5\n")], LIM)[0]
    assert honest_ok(later, 5)


@needs_root
def test_a_run_cannot_read_a_concurrent_runs_stdin():
    tmp = tempfile.gettempdir()
    spy = ("import glob, os, time\ntime.sleep(0.3)\nfound = []\n"
           f"for p in glob.glob({tmp!r} + '/wb_sandbox_*/*') + glob.glob({tmp!r} + '/wb_sandbox_*/*/*'):\n"
           "    try:\n        found.append(open(p).read())\n    except OSError:\n        pass\n"
           "for d in os.listdir('/proc'):\n    for fd in ('0', '1'):\n        try:\n"
           "            found.append(open(f'/proc/{d}/fd/{fd}').read())\n        except OSError:\n            pass\n"
           "print(repr(found)[:5000])\n")
    victim = "import time\nx = input()\ntime.sleep(1.0)\nprint(len(x))\n"
    res = run_programs([(victim, "SECRET-4242\n"), (spy, "")], LIM)
    assert res[0].ok and res[0].stdout.strip() == "11"
    assert res[1].ok and "SECRET-4242" not in res[1].stdout


@needs_root
def test_leaked_sleepers_are_killed_and_do_not_exhaust_processes():
    sleepers = ("import os, time\nfor i in range(31):\n    pid = os.fork()\n    if pid == 0:\n        os.setsid()\n"
                "        time.sleep(30)\n        os._exit(0)\n    print(pid, flush=True)\n")
    first = run_programs([(sleepers, "")], LIM)[0]
    pids = [int(x) for x in first.stdout.split()]
    assert first.ok and len(pids) == 31
    assert gone(pids)
    forker = (f"import os, time\nkids = []\nfor _ in range({LIM.nproc - 8}):\n    pid = os.fork()\n    if pid == 0:\n"
              "        time.sleep(0.3)\n        os._exit(0)\n    kids.append(pid)\n"
              "for k in kids:\n    os.waitpid(k, 0)\nprint(len(kids))\n")
    later = run_programs([(forker, "")] * 2, LIM)
    assert [r.stdout.strip() for r in later] == [str(LIM.nproc - 8)] * 2, [r.stderr[-200:] for r in later]


@needs_root
def test_a_uid_is_reaped_before_it_is_used():
    uid = LIM.uid_base + LIM.uid_count - 1
    cmd = ["/bin/sleep", "30"]
    stray = subprocess.Popen(cmd, user=uid, group=uid, extra_groups=[])    # a leftover of a crashed holder
    try:
        r = run_programs([("import os\nprint(os.getuid())", "")],
                         SandboxLimits(**{**LIM.__dict__, "uid_base": uid, "uid_count": 1}))[0]
        assert r.ok and int(r.stdout) == uid
        assert stray.wait(timeout=5) == -9 and not _live_pids_of(uid)
    finally:
        stray.kill()
        stray.wait()


@needs_root
def test_two_pools_never_share_a_uid():
    """Two concurrent callers (threads here; the lock is an flock, so processes too) on a one-uid pool
    take turns: their runs of that uid never overlap."""
    import threading

    one = SandboxLimits(**{**LIM.__dict__, "uid_base": LIM.uid_base + LIM.uid_count - 2, "uid_count": 1,
                           "max_workers": 1})
    code = "import os, time\nprint(os.getuid(), time.time())\ntime.sleep(0.4)\nprint(time.time())\n"
    out = []
    threads = [threading.Thread(target=lambda: out.extend(run_programs([(code, "")] * 2, one))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = sorted((float(r.stdout.split()[1]), float(r.stdout.split()[2])) for r in out)
    assert len(spans) == 4 and {int(r.stdout.split()[0]) for r in out} == {one.uid_base}
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


@needs_root
def test_honest_runs_pass_beside_every_hostile_program():
    hostile = ["import os, time\ntime.sleep(0.2)\nos.kill(-1, 9)\n",
               "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(0.5)\n    os.kill(-1, 9)\n",
               "import os, time\nfor i in range(20):\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(30)\n",
               "import os, signal, time\ntime.sleep(0.3)\nfor d in os.listdir('/proc'):\n    if d.isdigit():\n"
               "        try:\n            os.kill(int(d), signal.SIGKILL)\n        except OSError:\n            pass\n"]
    jobs = [job for i, h in enumerate(hostile) for job in ((h, ""), (HONEST, f"{i}\n"))]  # side by side
    res = run_programs(jobs, SandboxLimits(**{**LIM.__dict__, "max_workers": 4}))
    assert all(honest_ok(res[2 * i + 1], i) for i in range(4)), [(r.status, r.stderr[-100:]) for r in res]
    uids = {r.isolation["uid"] for r in res}
    assert all(not _live_pids_of(u) for u in uids)                         # nothing of any run is left


# ------------------------------------------------------------------------------------- memory
@pytest.mark.slow  # failed in two full-suite runs in a row (3 x 60 MB held under 128 MB), passes alone: under study
@pytest.mark.skipif(_cgroup_parents() is None, reason="no writable cgroup with memory and pids controllers here")
def test_memory_is_bounded_for_the_whole_run_not_per_process():
    # 6 children of 60 MB each: every one is under the 128 MB per-process RLIMIT_AS, together far over it.
    # Each child holds its memory until the parent has heard from all of them (the release pipe closes),
    # so "held" counts children holding 60 MB at the same time, however slowly a loaded machine forks.
    code = ("import os\nrel_r, rel_w = os.pipe()\nkids = []\nfor i in range(6):\n    r, w = os.pipe()\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n        os.close(r)\n        os.close(rel_w)\n        try:\n"
            "            b = bytearray(60 * 2**20)\n"
            "            for j in range(0, len(b), 4096):\n                b[j] = 1\n            os.write(w, b'1')\n"
            "        except MemoryError:\n            pass\n        os.read(rel_r, 1)\n        os._exit(0)\n"
            "    os.close(w)\n    kids.append((pid, r))\n"
            "held = sum(os.read(r, 1) == b'1' for _, r in kids)\nprint(held, flush=True)\nos.close(rel_w)\n"
            "for pid, _ in kids:\n    os.waitpid(pid, 0)\nraise SystemExit(0 if held == 6 else 1)\n")
    r = run_programs([(code, "")], SandboxLimits(**{**LIM.__dict__, "timeout_s": 15.0}))[0]  # OOM kills are slow
    held = int(r.stdout.split()[0]) if r.stdout.strip() else 0
    assert held * 60 <= LIM.memory_mb, (held, r.status)
    assert r.isolation["memory"].startswith("cgroup_") and r.isolation["pids"].startswith("cgroup_")
    assert r.status == "memory"                          # a failed run whose cgroup OOM-killed a process
    kind, parents = _cgroup_parents()
    assert not [d for p in parents for d in os.listdir(p) if d.startswith(f"wb_sandbox_{os.getpid()}_")]
    # without a cgroup the record says the bound is per process only
    off = run_programs([("print(1)", "")], SandboxLimits(**{**LIM.__dict__, "cgroup": "off"}))[0]
    assert off.ok and off.isolation["memory"] == "rlimit_as_per_process"


def test_isolation_is_reported_and_cgroup_choices_are_checked():
    iso = sandbox_isolation(LIM)
    assert iso["identity"] == ("uid_pool" if ROOT else "shared_uid")
    assert sandbox_isolation(SandboxLimits(cgroup="off"))["memory"] == "rlimit_as_per_process"
    if _cgroup_parents() is None:
        with pytest.raises(RuntimeError, match="cgroup='require'"):
            run_programs([("print(1)", "")], SandboxLimits(cgroup="require"))
    with pytest.raises(ValueError, match="cgroup must be"):
        SandboxLimits(cgroup="yes")
    with pytest.raises(ValueError, match="uid_base"):
        SandboxLimits(uid_base=0)
    p = Problem("one", "print 1", "1 test", meta={"tests": [{"input": "", "output": "1"}]})
    rep = CodeTask([p], limits=LIM).test_report("print(1)", p)
    assert rep[0]["passed"] and rep[0]["isolation"]["identity"] == iso["identity"]


# ------------------------------------------------------------------------------ private tests
def test_private_test_inflation_is_capped():
    tests = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]
    blob = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()
    assert decode_private_tests(blob, max_bytes=10_000) == tests
    bomb = base64.b64encode(zlib.compress(pickle.dumps(json.dumps([{"input": "x" * 20_000_000, "output": ""}])), 9))
    assert len(bomb) < 100_000
    with pytest.raises(ValueError, match="inflates to more than 1000000 bytes"):
        decode_private_tests(bomb.decode(), max_bytes=1_000_000)
    row = {"question_id": "q", "question_content": "Add.", "private_test_cases": bomb.decode(),
           "public_test_cases": json.dumps(tests)}
    with pytest.raises(ValueError, match="could not be decoded.*inflates to more than"):
        lcb_problem(row, "test", max_private_bytes=1_000_000)
    truncated = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))[:-6]).decode()
    with pytest.raises(ValueError, match="truncated"):
        decode_private_tests(truncated)


# ------------------------------------------------------------------------------ text helpers
def test_normalise_code_reads_carriage_returns_as_line_ends():
    assert normalise_code("\rprint(1)") == normalise_code("print(1)") == "print(1)"
    assert normalise_code("x = 1  # c\r\n\r\nprint(x)\r") == normalise_code("x = 1\nprint(x)")
    assert normalise_code("\r\tx") == "\tx"                               # does not tokenize: line filter


OLD_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["`", "```", " ", "\t", "\n", "py", "python", "x", "+", "\r"]), max_size=30).map("".join))
def test_fenced_blocks_finds_what_the_old_regex_found(text):
    assert fenced_blocks(text) == OLD_FENCE.findall(text)                  # the regex as the oracle, on short texts


@pytest.mark.timeout(20)
def test_fence_extraction_is_linear_on_long_whitespace():
    # the old regex needed over 20 s for the first of these (time superlinear in the run of spaces)
    for text in [("```" + " " * 50) * 2000, "```" + " " * 200_000, "```\n" + " " * 200_000, "```" * 50_000]:
        assert extract_code(text) == (None, None)
    assert extract_code("```python" + " " * 100_000 + "\nprint(1)\n```") == ("print(1)", "python_block")


def test_split_modules_doctests():
    for name in ("workbench.tasks.code_judge", "workbench.tasks.code_loaders", "workbench.tasks.sandbox"):
        res = doctest.testmod(importlib.import_module(name))
        assert res.failed == 0 and (res.attempted > 0 or name.endswith("sandbox")), (name, res)
