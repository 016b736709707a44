"""workbench.tasks.code_tasks: sandboxed stdin/stdout judging, extraction, equivalence, loaders, RSA end to end."""
from __future__ import annotations

import base64
import json
import os
import pickle
import time
import zlib

import pytest

from workbench.llm import SamplingParams
from workbench.llm.scripted import ScriptedLLM
from workbench.rsa import Config
from workbench.rsa.core import make_task, run_rsa
from workbench.tasks.base import Problem
from workbench.tasks.code_tasks import (CodeTask, SandboxLimits, decode_private_tests, extract_code, lcb_files,
                                        lcb_problem, load_code_jsonl, normalise_code, outputs_match, run_program,
                                        run_programs)
from workbench.tasks.sandbox import _resolve_user

FAST = SandboxLimits(timeout_s=2.0, cpu_s=1, memory_mb=256, output_bytes=20_000, nproc=16, max_workers=2)

ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
ADD_TESTS = [{"input": "3 4\n", "output": "7\n"}, {"input": "10 -2\n", "output": "8"},
             {"input": "0 0\n", "output": "0\n"}]


def add_problem(pid="add"):
    return Problem(pid, "Read two integers a and b, print a + b.", "3 tests", meta={"tests": ADD_TESTS})


def group_gone(pgid: int, wait_s: float = 3.0) -> bool:
    """No process left in group ``pgid`` (zombies are reaped by init; allow it a moment)."""
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


# ------------------------------------------------------------------------------------- judging
def test_outputs_match_follows_livecodebench():
    assert outputs_match("7  \n", "7")
    assert outputs_match("  1 2\n3\n\n", "1 2\n3")           # whole text and every line stripped
    assert outputs_match("0.50 2\n", "0.5 2.0")              # numeric lines compared as Decimals
    assert not outputs_match("1 2\n", "1\n2")                # line structure matters
    assert not outputs_match("7\n8", "7")
    assert not outputs_match("abc", "abd")
    assert not outputs_match("0.333", "0.3333")              # no tolerance: exact decimal equality


def test_extract_last_python_block_and_unparsed():
    text = "First try:\n```python\nprint(1)\n```\nBetter:\n```python\nprint(2)\n```\nDone."
    assert extract_code(text) == ("print(2)", "python_block")
    # a later non-python block does not win over the last python block
    assert extract_code("```python\nx=1\n```\n```text\nsample\n```") == ("x=1", "python_block")
    assert extract_code("```\nprint(3)\n```") == ("print(3)", "code_block")
    assert extract_code("no code at all") == (None, None)
    assert extract_code(None) == (None, None)
    task = CodeTask([add_problem()], limits=FAST)
    assert task.extract("I cannot do it", task.problems[0]) == (None, None)
    assert task.score(None, task.problems[0]) == 0.0


# -------------------------------------------------------------------------------------- sandbox
def test_correct_wrong_and_crashing_programs():
    task = CodeTask([add_problem()], limits=FAST)
    p = task.problems[0]
    assert task.score(ADD, p) == 1.0
    assert task.score("a, b = map(int, input().split())\nprint(a - b)\n", p) == 0.0     # wrong output
    assert task.score("a, b = map(int, input().split())\nprint(a + b if a else 1)\n", p) == 0.0  # 1 of 3 fails
    crash = "raise RuntimeError('boom')\n"
    assert task.score(crash, p) == 0.0
    rep = task.test_report(crash, p)
    assert [r["status"] for r in rep] == ["error"] * 3 and "boom" in rep[0]["stderr"]
    assert task.score("def broken(:\n", p) == 0.0                                         # syntax error


def test_stdin_is_fed_whole():
    r = run_program("import sys\ndata = sys.stdin.read().split()\nprint(sum(map(int, data)), len(data))",
                    "1 2\n3\n4 5 6\n", FAST)
    assert r.status == "ok" and r.stdout.strip() == "21 6"
    assert run_program("print(input())", "", FAST).status == "error"                   # EOFError


def test_infinite_loop_is_killed_and_its_group_is_gone():
    limits = SandboxLimits(timeout_s=1.0, cpu_s=5, max_workers=1)   # wall clock fires before the CPU limit
    code = "import os, time\nprint(os.getpgrp(), flush=True)\nwhile True:\n    time.sleep(0.01)\n"
    t0 = time.monotonic()
    r = run_program(code, "", limits)
    assert r.status == "timeout" and r.returncode == -9
    assert time.monotonic() - t0 < 1.0 + 3.0
    assert group_gone(int(r.stdout.split()[0]))
    busy = run_program("while True:\n    pass\n", "", FAST)            # CPU-bound: RLIMIT_CPU (1 s) fires
    assert busy.status in ("cpu_limit", "timeout")


def test_memory_bomb_is_stopped_by_the_limit():
    r = run_program("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))\n", "", FAST)
    assert r.status == "memory", (r.status, r.stderr[-300:])
    # a single allocation over the limit also fails instead of swapping the machine
    assert run_program("x = bytearray(2 * 1024**3)\n", "", FAST).status == "memory"


def test_fork_bomb_is_contained():
    user = _resolve_user(FAST.run_as)
    code = ("import os, time\nprint(os.getpgrp(), flush=True)\nn = 0\n"
            "try:\n    while True:\n        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n"
            "        n += 1\nexcept OSError:\n    print('fork failed after', n, flush=True)\ntime.sleep(30)\n")
    r = run_program(code, "", FAST)
    assert r.status == "timeout"
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[1].startswith("fork failed after"), r.stdout
    if user is not None:  # running as a dedicated user, RLIMIT_NPROC bounds that user's processes
        assert int(lines[1].split()[-1]) < FAST.nproc
    assert group_gone(int(lines[0]))


def test_huge_output_is_capped():
    r = run_program("while True:\n    print('x' * 1000)\n", "", FAST)
    assert r.status == "output_limit" and len(r.stdout) <= FAST.output_bytes


def test_minimal_environment_and_private_workdir(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "secret-token")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    r = run_program("import os\nprint(sorted(os.environ))\nprint(os.getcwd())\nopen('f.txt', 'w').write('x')\n", "", FAST)
    assert r.status == "ok"
    names = r.stdout.splitlines()[0]
    assert "HF_TOKEN" not in names and "https_proxy" not in names and "secret" not in r.stdout
    workdir = r.stdout.splitlines()[1]
    assert "wb_sandbox_" in workdir and not os.path.exists(workdir)        # temp dir removed afterwards


def test_output_is_read_from_our_descriptor_not_the_path(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read me")
    os.chmod(tmp_path, 0o755)
    os.chmod(secret, 0o644)
    code = ("import os, sys\nprint('hello', flush=True)\ntry:\n"
            f"    os.symlink({str(secret)!r}, '../stdout.txt')\n    os.remove('../main.py')\n"
            "except OSError as e:\n    print('refused', type(e).__name__, file=sys.stderr)\n")
    r = run_program(code, "", FAST)
    assert r.status == "ok" and r.stdout == "hello\n"       # even if the swap succeeded, we read our descriptor
    if _resolve_user(FAST.run_as) is not None:               # as a dedicated user it cannot even touch them
        assert "refused PermissionError" in r.stderr


def test_bad_limits_and_jobs_are_clear_errors():
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxLimits(timeout_s=0)
    with pytest.raises(TypeError, match="must be str"):
        run_programs([(None, "")], FAST)
    with pytest.raises(ValueError, match="outputs' or 'text"):
        CodeTask([add_problem()], equivalence="tokens")
    with pytest.raises(ValueError, match="non-empty list"):
        CodeTask([Problem("x", "q", "", meta={"tests": []})])


def test_pool_gives_the_same_results_as_sequential():
    progs = [ADD, "a, b = map(int, input().split())\nprint(a * b)\n", "import sys\nprint(sys.stdin.read()[::-1])\n",
             "raise SystemExit(3)\n", "print(int(input().split()[0]) // 0)\n"]
    jobs = [(c, t["input"]) for c in progs for t in ADD_TESTS]
    seq = run_programs(jobs, SandboxLimits(**{**FAST.__dict__, "max_workers": 1}))
    par = run_programs(jobs, SandboxLimits(**{**FAST.__dict__, "max_workers": 4}))
    assert [(r.status, r.returncode, r.stdout) for r in seq] == [(r.status, r.returncode, r.stdout) for r in par]
    assert [r.stdout for r in seq[:3]] == ["7\n", "8\n", "0\n"] and seq[9].returncode == 3
    # the task's batched evaluate() scores like one-by-one scoring
    t1, t2 = CodeTask([add_problem()], limits=FAST), CodeTask([add_problem()], limits=FAST)
    p = t1.problems[0]
    t2.evaluate([(c, p) for c in progs])
    assert [t1.score(c, p) for c in progs] == [t2.score(c, p) for c in progs] == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_equivalence_by_outputs_and_by_text():
    p = add_problem()
    by_out = CodeTask([p], limits=FAST)
    other_add = "import sys\nx = sys.stdin.read().split()\nprint(int(x[0]) + int(x[1]))\n"
    sub = "a, b = map(int, input().split())\nprint(a - b)\n"
    assert by_out.equivalent(ADD, other_add, p)                 # different code, same outputs
    assert not by_out.equivalent(ADD, sub, p)
    assert by_out.equivalent("raise ValueError\n", "1/0\n", p)  # both crash on every test: same behaviour
    assert not by_out.equivalent(ADD, None, p)
    by_text = CodeTask([p], limits=FAST, equivalence="text")
    assert not by_text.equivalent(ADD, other_add, p)
    assert by_text.equivalent(ADD, "a, b = map(int, input().split())  # read\n\nprint(a + b)   \n", p)
    assert normalise_code("x=1 # c\n") == normalise_code("x=1")


def test_call_based_tests():
    tests = [{"input": "[3, 1, 2]\n2", "output": "[1, 2]", "testtype": "functional"},
             {"input": "[5, 4]\n0", "output": "[]", "testtype": "functional"}]
    p = Problem("lc", "Return the k smallest values, sorted.", "2 tests", meta={"tests": tests, "fn_name": "smallest"})
    task = CodeTask([p], limits=FAST)
    good = ("class Solution:\n    def smallest(self, nums: List[int], k: int) -> List[int]:\n"
            "        print('debug output does not count')\n        return tuple(heapq.nsmallest(k, nums))\n")
    assert task.score(good, p) == 1.0                        # preamble names (List, heapq); tuple == JSON list
    assert task.score("def smallest(nums, k):\n    return sorted(nums)[:k]\n", p) == 1.0   # top-level function
    assert task.score("class Solution:\n    def smallest(self, nums, k):\n        return sorted(nums)[:k + 1]\n", p) == 0.0
    assert task.score("class Solution:\n    def other(self, nums, k):\n        return []\n", p) == 0.0
    assert task.test_report("class Solution:\n    def other(self, nums, k):\n        return []\n", p)[0]["status"] == "error"
    with pytest.raises(ValueError, match="names no function"):
        CodeTask([Problem("x", "q", "", meta={"tests": tests})])


# -------------------------------------------------------------------------------------- loaders
def test_code_jsonl_loader_reports_malformed_rows(tmp_path):
    good = {"id": "add", "question": "Add two numbers.", "tests": ADD_TESTS}
    rows = [json.dumps(good), "{not json", json.dumps({"id": "q", "tests": ADD_TESTS}),
            json.dumps({"id": "t", "question": "x", "tests": [{"input": "1"}]}), "",
            json.dumps({"id": "f", "question": "x", "tests": [{"input": "[1]", "output": "1", "testtype": "functional"}]}),
            json.dumps(good), json.dumps([1, 2])]
    path = tmp_path / "code.jsonl"
    path.write_text("\n".join(rows) + "\n")
    with pytest.warns(UserWarning, match="7 malformed"):
        task = load_code_jsonl(path, limits=FAST)
    assert [p.id for p in task.problems] == ["add"]
    reasons = {m.position: m.reason for m in task.malformed}
    assert set(reasons) == {1, 2, 3, 4, 5, 6, 7}
    assert "invalid JSON" in reasons[1] and "question" in reasons[2] and "test #0" in reasons[3]
    assert "empty line" in reasons[4] and "functional" in reasons[5] and "duplicate" in reasons[6]
    assert "not an object" in reasons[7]
    with pytest.raises(ValueError, match="malformed"):
        load_code_jsonl(path, strict=True)
    with pytest.raises(FileNotFoundError):
        load_code_jsonl(tmp_path / "missing.jsonl")


def test_task_specs_and_livecodebench_decoding(tmp_path, monkeypatch):
    path = tmp_path / "two.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "Add.", "tests": ADD_TESTS}) + "\n")
    task = make_task(Config(task=f"codejsonl:{path}", n_problems=0))
    assert isinstance(task, CodeTask) and len(task) == 1
    assert lcb_files("release_v6") == ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl",
                                       "test6.jsonl"]
    with pytest.raises(ValueError, match="unknown LiveCodeBench release"):
        lcb_files("latest")
    # offline: a clear error naming the local alternative
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="codejsonl"):
        make_task(Config(task="lcb:release_v6:2025-02-01:2025-05-01", n_problems=2))
    # a LiveCodeBench row: public tests as JSON, private tests as base64(zlib(pickle(json)))
    priv = [{"input": "5 5\n", "output": "10\n", "testtype": "stdin"}]
    blob = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(priv)))).decode()
    assert decode_private_tests(blob) == priv
    row = {"question_id": "abc100_a", "question_content": "Add.", "platform": "atcoder", "contest_date": "2025-03-01",
           "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
           "private_test_cases": blob}
    p = lcb_problem(row, "test")
    assert [t["input"] for t in p.meta["tests"]] == ["1 2\n", "5 5\n"] and p.meta["platform"] == "atcoder"
    # a pickle that names a global is refused, not executed
    evil = base64.b64encode(zlib.compress(pickle.dumps(os.getcwd))).decode()
    with pytest.raises(ValueError, match="could not be decoded"):
        lcb_problem({**row, "private_test_cases": evil}, "test")


# --------------------------------------------------------------------------------- RSA end to end
def test_rsa_runs_end_to_end_on_a_code_task(tmp_path):
    mul = {"id": "mul", "question": "Read a and b, print a * b.",
           "tests": [{"input": "3 4\n", "output": "12\n"}, {"input": "2 5\n", "output": "10\n"}]}
    path = tmp_path / "code.jsonl"
    path.write_text(json.dumps({"id": "add", "question": "Read a and b, print a + b.", "tests": ADD_TESTS}) + "\n"
                    + json.dumps(mul) + "\n")
    task = load_code_jsonl(path, limits=FAST)
    right = {"add": ADD, "mul": "a, b = map(int, input().split())\nprint(a * b)\n"}
    wrong = "a, b = map(int, input().split())\nprint(a - b)\n"

    def respond(prompt, req):
        text = prompt if isinstance(prompt, str) else str(prompt)
        pid = "mul" if "a * b" in text else "add"
        if "Candidate" in text or "---- Solution" in text:       # aggregation: always the right program
            return f"Combining the candidates:\n```python\n{right[pid]}```"
        return f"```python\n{right[pid] if req.seed % 2 else wrong}```" if req.seed % 3 else "no code here"

    out = run_rsa(ScriptedLLM(respond), task, n=4, k=2, t=2, sampling=SamplingParams(max_tokens=200), seed=0,
                  progress=False)
    assert out["llm_calls"] == 2 and len(out["populations"]) == 2
    step1, step2 = out["populations"]
    for pi, p in enumerate(task.problems):
        for c in step1[pi]:   # scores are the sandbox's verdicts on the extracted programs
            assert c["correct"] == (c["answer"] is not None and task.score(c["answer"], p) == 1.0)
        assert all(c["correct"] and c["parse"] == "python_block" and len(c["parents"]) == 2 for c in step2[pi])
    assert out["steps"][1]["mean_acc"] == 1.0 and out["steps"][1]["majority_acc"] == 1.0
    n_unparsed = sum(c["answer"] is None for row in step1 for c in row)
    assert out["steps"][0]["unparsed"] == n_unparsed > 0            # "no code here" counted, not dropped


def test_livecodebench_loader_window_and_malformed_rows(tmp_path, monkeypatch):
    """The hub download replaced by local files in LiveCodeBench's row format (no network in tests)."""
    import huggingface_hub

    def row(qid, date, tests, testtype="stdin", **extra):
        return json.dumps({"question_id": qid, "question_content": f"Problem {qid}: add.", "platform": "atcoder",
                           "contest_date": f"{date}T00:00:00", "difficulty": "easy", "private_test_cases": "",
                           "public_test_cases": json.dumps([{**t, "testtype": testtype} for t in tests]), **extra})

    call_tests = [{"input": "[1, 2, 3]\n2", "output": "[2, 4, 6]"}]

    files = {"test5.jsonl": [row("old", "2024-10-01", ADD_TESTS), row("in1", "2025-02-10", ADD_TESTS)],
             "test6.jsonl": [row("in2", "2025-03-01", ADD_TESTS), row("leet", "2025-03-02", call_tests, "functional"),
                             row("lc2", "2025-03-03", call_tests, "functional", metadata=json.dumps({"func_name": "scale"}),
                                 starter_code="class Solution:\n    def scale(self, xs: List[int], k: int) -> List[int]:\n"),
                             "{broken", row("late", "2025-06-01", ADD_TESTS)]}
    for name, lines in files.items():
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    asked = []

    def fake_download(repo_id, filename, repo_type=None):
        asked.append((repo_id, filename, repo_type))
        return str(tmp_path / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.warns(UserWarning, match="2 malformed"):
        task = make_task(Config(task="lcb:v5_v6:2025-02-01:2025-05-01", n_problems=0))
    assert asked == [("livecodebench/code_generation_lite", f, "dataset") for f in ("test5.jsonl", "test6.jsonl")]
    assert [p.id for p in task.problems] == ["in1", "in2", "lc2"]       # the date window, both ends inclusive
    assert sorted(m.reason[:30] for m in task.malformed) == sorted(["invalid JSON: Expecting proper",
                                                                     "leet: test #0 is functional (c"])
    assert task.score(ADD, task.problems[0]) == 1.0
    lc2 = task.problems[2]
    assert "def scale(self, xs: List[int]" in lc2.question and lc2.meta["fn_name"] == "scale"
    solution = "class Solution:\n    def scale(self, xs: List[int], k: int) -> List[int]:\n        return [x * k for x in xs]\n"
    assert task.score(solution, lc2) == 1.0 and task.score(solution.replace("x * k", "x + k"), lc2) == 0.0
    assert lcb_files("release_latest") == lcb_files("release_v6")


def test_rsa_run_with_baselines_on_a_code_task_spec(tmp_path):
    """``workbench.rsa.run`` with ``task="codejsonl:<path>"``: RSA, the three baselines, JSON-serialisable results."""
    from workbench.rsa import run

    path = tmp_path / "code.jsonl"
    path.write_text(json.dumps({"id": "add", "question": "Read a and b, print a + b.", "tests": ADD_TESTS}) + "\n")
    wrong = "a, b = map(int, input().split())\nprint(a - b)\n"

    def respond(prompt, req):
        text = prompt if isinstance(prompt, str) else str(prompt)
        if "---- Solution" in text or "Candidate" in text:
            return f"```python\n{ADD}```"
        if "```python" in text:                                   # verification or refinement of one program
            return "True" if "a + b" in text else "False"
        return f"```python\n{ADD if req.seed % 2 else wrong}```"

    cfg = Config(task=f"codejsonl:{path}", n_problems=0, population=4, subset_size=2, steps=2, max_tokens=200,
                 backend="scripted")
    out = run(cfg, ScriptedLLM(respond), progress=False)
    json.dumps(out)
    assert out["task"]["name"] == path.stem and out["summary"]["rsa"]["mean_acc_final"] == 1.0
    assert set(out["baselines"]) == {"majority_vote", "best_of_n_verify", "self_refine"}
    first = out["rsa"]["populations"][0][0]
    assert out["summary"]["rsa"]["mean_acc_step1"] == sum(c["correct"] for c in first) / 4
