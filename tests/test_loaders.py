"""JSONL loaders (math and code): one bad line (invalid UTF-8, a huge integer, deep nesting, NaN or
Infinity) is reported with its line number and the rest of the file still loads."""
from __future__ import annotations

import json
import math
import warnings

import pytest

from workbench.tasks import load_jsonl
from workbench.tasks.base import MalformedItem
from workbench.tasks.code_tasks import load_code_jsonl
from workbench.tasks.loaders import iter_jsonl, problems_from_records

GOOD = json.dumps({"id": "ok", "question": "1+1?", "answer": "2"}).encode()
GOOD2 = json.dumps({"id": "ok2", "question": "2+2?", "answer": 4}).encode()

BAD_LINES = {
    "invalid utf-8": (b'{"id": "u", "question": "caf\xe9?", "answer": "1"}', "invalid UTF-8"),
    "lone continuation byte": (b"\x80\x81", "invalid UTF-8"),
    "huge integer": (b'{"id": "h", "question": "big?", "answer": ' + b"9" * 5000 + b"}", "invalid JSON"),
    "deep nesting": (b"[" * 200_000 + b"]" * 200_000, "invalid JSON"),
    "NaN answer": (b'{"id": "n", "question": "q?", "answer": NaN}', "invalid JSON"),
    "Infinity answer": (b'{"id": "i", "question": "q?", "answer": Infinity}', "invalid JSON"),
    "-Infinity answer": (b'{"id": "j", "question": "q?", "answer": -Infinity}', "invalid JSON"),
    "overflowing float": (b'{"id": "o", "question": "q?", "answer": 1e999}', "invalid JSON"),
}


def _file(tmp_path, bad: bytes):
    path = tmp_path / "probs.jsonl"
    path.write_bytes(GOOD + b"\n" + bad + b"\n" + GOOD2 + b"\n")
    return path


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_math_jsonl_reports_the_bad_line_and_loads_the_rest(tmp_path, case):
    bad, reason = BAD_LINES[case]
    with pytest.warns(UserWarning, match=r"1 malformed item.*#1: " + reason):
        task = load_jsonl(_file(tmp_path, bad))
    assert [p.id for p in task.problems] == ["ok", "ok2"]
    assert [(m.position, m.reason.split(":")[0].split(" at ")[0]) for m in task.malformed] == [(1, reason)]


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_iter_jsonl_yields_every_line_in_order(tmp_path, case):
    bad, reason = BAD_LINES[case]
    rows = list(iter_jsonl(_file(tmp_path, bad)))
    assert [i for i, _, _ in rows] == [0, 1, 2]
    assert isinstance(rows[1][2], MalformedItem) and rows[1][2].reason.startswith(reason)
    assert rows[0][2]["id"] == "ok" and rows[2][2]["answer"] == 4


@pytest.mark.parametrize("case", ["invalid utf-8", "huge integer", "deep nesting", "NaN answer"])
def test_code_jsonl_reports_the_bad_line_and_loads_the_rest(tmp_path, case):
    bad, reason = BAD_LINES[case]
    good = [json.dumps({"id": f"c{i}", "question": "print 1", "tests": [{"input": "", "output": "1"}]}) for i in (0, 1)]
    path = tmp_path / "code.jsonl"
    path.write_bytes(good[0].encode() + b"\n" + bad + b"\n" + good[1].encode() + b"\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = load_code_jsonl(path)
    assert [p.id for p in task.problems] == ["c0", "c1"]
    assert [(m.position, m.reason.startswith(reason)) for m in task.malformed] == [(1, True)]


def test_utf8_text_and_finite_numbers_still_load(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"id": "a", "question": "Café, naïve — π ≈ ?", "answer": "3.14"}, {"id": "b", "question": "q?", "answer": 1e300},
            {"id": "c", "question": "q?", "answer": -0.5}, {"id": "d", "question": "q?", "answer": 10 ** 40}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    task = load_jsonl(path)
    assert [p.answer for p in task.problems] == ["3.14", "1e+300", "-0.5", str(10 ** 40)]
    assert task.problems[0].question == rows[0]["question"] and not task.malformed


def test_non_finite_answers_from_records_are_rejected():
    """Hub datasets give Python values: a NaN or infinite float answer is reported, not scored against."""
    recs = [{"question": "a?", "answer": math.nan}, {"question": "b?", "answer": math.inf}, {"question": "c?", "answer": 2.5}]
    with pytest.warns(UserWarning, match="2 malformed"):
        task = problems_from_records(recs, "src")
    assert [p.answer for p in task.problems] == ["2.5"]
    assert [m.position for m in task.malformed] == [0, 1]
