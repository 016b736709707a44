"""workbench.tasks: Reasoning Gym wrapper and subsets, lenient parsing, loaders, malformed items."""
from __future__ import annotations

import json

import pytest

from workbench.tasks import (COGNITION, GAMES, MathTask, MCQTask, Problem, ReasoningGymTask, check_task_names,
                             load_hf, load_jsonl, parse_answer, same_answer)
from workbench.tasks.math_answers import answers_equivalent, extract_boxed
from workbench.tasks.reasoning_gym_tasks import available_tasks


def test_paper_subsets_exist_in_reasoning_gym():
    assert len(GAMES) == 17 and len(COGNITION) == 9 and not set(GAMES) & set(COGNITION)
    known = set(available_tasks())
    assert set(GAMES) <= known and set(COGNITION) <= known
    check_task_names(GAMES + COGNITION)
    with pytest.raises(ValueError, match="unknown Reasoning Gym task"):
        check_task_names(["chain_sum", "not_a_task"])


def test_reasoning_gym_scorer_and_generation_are_seeded():
    t1 = ReasoningGymTask("chain_sum", size=4, seed=3, config={"min_terms": 2, "max_terms": 2, "max_digits": 1})
    t2 = ReasoningGymTask("chain_sum", size=4, seed=3, config={"min_terms": 2, "max_terms": 2, "max_digits": 1})
    assert [p.question for p in t1.problems] == [p.question for p in t2.problems]
    for p in t1.problems:
        assert t1.score(p.answer, p) == 1.0
        assert t1.score(str(int(p.answer) + 1), p) == 0.0
        assert t1.score(None, p) == 0.0
        # a full completion goes through the lenient parser first
        ans, how = t1.extract(f"Let me add.\n<answer>{p.answer}</answer>", p)
        assert (ans, how) == (p.answer, "tag") and t1.score(ans, p) == 1.0


def test_reasoning_gym_mixture_with_per_task_config():
    t = ReasoningGymTask(["chain_sum", "products"], size=2, seed=0,
                         config={"chain_sum": {"max_digits": 1}, "products": {"min_digits": 1, "max_digits": 1}})
    assert [p.id for p in t.problems] == ["chain_sum/0", "chain_sum/1", "products/0", "products/1"]
    assert all(t.score(p.answer, p) == 1.0 for p in t.problems)


@pytest.mark.slow
@pytest.mark.parametrize("name", GAMES + COGNITION)
def test_every_subset_task_generates_one_item(name):
    t = ReasoningGymTask(name, size=1, seed=0)
    assert t.problems[0].question


def test_lenient_parsing_order():
    assert parse_answer("a <answer>5</answer> b <answer>6</answer>") == ("6", "tag")
    assert parse_answer("<answer>...</answer> and then 7", numeric=True) == ("7", "last_number")
    assert parse_answer("\\boxed{12}", fmt="boxed") == ("12", "boxed")
    assert parse_answer("<answer>3</answer> \\boxed{4}", fmt="boxed") == ("4", "boxed")
    assert parse_answer("Final Answer: 1,234", numeric=True) == ("1234", "final_phrase")
    assert parse_answer("first line\nthe grid is\nA B C\n") == ("A B C", "last_line")
    assert parse_answer("no digits here", numeric=True) == (None, None)
    assert parse_answer(None) == (None, None)
    assert same_answer("-4", "-4.0") and not same_answer("4", "-4") and not same_answer(None, "1")


def test_math_and_mcq_tasks():
    m = MathTask([Problem("a", "half?", "1/2")])
    p = m.problems[0]
    ans, how = m.extract("so it is \\boxed{\\frac{1}{2}}", p)
    assert how == "boxed" and m.score(ans, p) == 1.0 and m.equivalent("0.5", "1/2", p)
    q = MCQTask([Problem("q", "Pick one: (A) x (B) y", "B")])
    assert q.extract("answer: \\boxed{B}", q.problems[0]) == ("B", "boxed")
    assert q.score("b", q.problems[0]) == 1.0
    with pytest.raises(ValueError, match="no problems"):
        MathTask([])
    with pytest.raises(ValueError, match="duplicate"):
        MathTask([Problem("a", "q", "1"), Problem("a", "q2", "2")])


def test_math_answers_module_unchanged_behaviour():
    assert extract_boxed(r"\boxed{\frac{1}{2}} then \boxed{3}") == "3"
    assert answers_equivalent("1/2", "0.5") and not answers_equivalent("3", "4")


def test_jsonl_loader_reports_malformed_items(tmp_path):
    path = tmp_path / "probs.jsonl"
    lines = [json.dumps({"id": "x1", "question": "1+1?", "answer": "2"}), "{not json", "",
             json.dumps({"question": "no answer"}), json.dumps([1, 2]), json.dumps({"question": "2+2?", "answer": 4})]
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="4 malformed item"):
        task = load_jsonl(path)
    assert [p.id for p in task.problems] == ["x1", "probs/5"]
    assert task.problems[1].answer == "4"
    reasons = [(m.position, m.reason.split(":")[0]) for m in task.malformed]
    assert reasons == [(1, "invalid JSON"), (2, "empty line"), (3, "missing or empty answer"), (4, "not an object")]
    with pytest.raises(ValueError, match="malformed"):
        load_jsonl(path, strict=True)
    with pytest.raises(FileNotFoundError):
        load_jsonl(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no problems"):
        load_jsonl(bad)


def test_hub_loader_fails_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_hf("aime2024")
    with pytest.raises((ImportError, RuntimeError), match="pip install datasets|load_jsonl"):
        load_hf("aime25")
