"""RSA's strict answer reading (the authors' evaluation rule), the lenient fallback beside it, parse
categories, truncation, self-verification verdicts, and the scoring of every method on both readings.
Scripted backend only."""
from __future__ import annotations

import random
import re

import pytest

from workbench.llm import load_llm
from workbench.llm.scripted import prompt_text
from workbench.llm.structure import StructureViolationError
from workbench.rsa import Config, run
from workbench.rsa.answers import (answer_structure, parse_verdict, read_answer, strict_answer, strict_tag_answer)
from workbench.rsa.core import make_candidate, structure_on
from workbench.rsa.metrics import population_metrics, standard_error
from workbench.tasks import MathTask, MCQTask, Problem, ReasoningGymTask

EASY = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}


def authors_rule(completion: str):
    """The reference's extract_rg_solution, restated from its description as an independent check."""
    m = re.search(r"<answer>\s*(.*?)\s*</answer>", completion, flags=re.DOTALL)
    if m:
        return m.group(1).strip()
    parts = completion.split("</think>", 1)
    if len(parts) == 1:
        return None
    final = parts[1].strip().rsplit("Final Answer:", 1)
    return final[1].strip() if len(final) == 2 else None


# ------------------------------------------------------------------------------ strict rule
@pytest.mark.parametrize("text,expected", [
    ("so <answer>7</answer>", ("7", "tag")),
    ("<answer>\n 7 \n</answer>", ("7", "tag")),
    ("<answer>3</answer> then <answer>4</answer>", ("3", "tag")),           # the first tag, as the authors
    ("<answer>...</answer> 3 + 4 = <answer>7</answer>", ("...", "tag")),    # an echoed template is read (and wrong)
    ("<ANSWER>7</ANSWER>", (None, None)),                                   # case-sensitive
    ("<answer>7", (None, None)),                                            # unclosed
    ("the final answer is 7", (None, None)),
    ("Final Answer: 7", (None, None)),                                      # only after </think>
    ("<think>a</think> Final Answer: 6 and Final Answer: 7", ("7", "final_answer")),
    ("<think>a</think> the answer: 7", (None, None)),
    ("<answer>7 <think>x</think> Final Answer: 8", ("8", "final_answer")),  # unclosed tag, then the fallback
    ("", (None, None)),
    (None, (None, None)),
])
def test_strict_tag_rule_cases(text, expected):
    assert strict_tag_answer(text) == expected


def test_strict_tag_rule_equals_the_authors_regex_on_random_texts():
    rnd = random.Random(0)
    atoms = ["<answer>", "</answer>", "</think>", "Final Answer:", " ", "\n", "7", "x", "<", ">", "answer"]
    for _ in range(3000):
        text = "".join(rnd.choice(atoms) for _ in range(rnd.randint(0, 9)))
        assert strict_tag_answer(text)[0] == authors_rule(text), repr(text)


def test_strict_rule_per_format_and_lenient_fallback_categories():
    rg = ReasoningGymTask("chain_sum", size=1, seed=0, config=EASY)
    p = rg.problems[0]
    r = read_answer(rg, f"so it is {p.answer}", p)
    assert (r["answer"], r["category"], r["answer_lenient"], r["parse"]) == (None, "lenient_only", p.answer, "last_number")
    r = read_answer(rg, f"x <answer>{p.answer}</answer>", p)
    assert (r["answer"], r["parse_strict"], r["category"]) == (p.answer, "tag", "strict")
    assert read_answer(rg, "no digits", p)["category"] == "unparsed"
    # lenient takes the LAST tag, strict the FIRST: both are kept
    r = read_answer(rg, "<answer>1</answer> <answer>2</answer>", p)
    assert (r["answer"], r["answer_lenient"]) == ("1", "2")
    m = MathTask([Problem("m", "q", "1/2")])
    assert strict_answer(m, "so \\boxed{3} then \\boxed{\\frac{1}{2}}", m.problems[0]) == ("\\frac{1}{2}", "boxed")
    assert strict_answer(m, "<answer>1/2</answer>", m.problems[0]) == (None, None)
    assert strict_answer(m, "\\boxed{ }", m.problems[0]) == (None, None)
    q = MCQTask([Problem("c", "q", "C")])
    assert strict_answer(q, "\\boxed{C}", q.problems[0]) == ("C", "boxed")
    assert strict_answer(q, "\\boxed{none}", q.problems[0]) == (None, None)
    assert strict_answer(q, "the answer is C", q.problems[0]) == (None, None)


def test_candidate_scoring_strict_vs_lenient_and_truncation():
    rg = ReasoningGymTask("chain_sum", size=1, seed=0, config=EASY)
    p = rg.problems[0]
    c = make_candidate(f"the answer is {p.answer}", rg, p, threshold=1.0, parents=[], finish_reason="length")
    assert c["answer"] is None and c["score"] == 0.0 and c["correct"] is False           # strict: unreadable
    assert c["answer_lenient"] == p.answer and c["correct_lenient"] is True              # lenient: right
    assert c["category"] == "lenient_only" and c["truncated"] is True
    c = make_candidate("", rg, p, threshold=1.0, parents=[], finish_reason="stop")
    assert c["category"] == "unparsed" and not c["correct"] and not c["correct_lenient"] and not c["truncated"]
    c = make_candidate(f"<answer>{p.answer}</answer>", rg, p, threshold=1.0, parents=[0], finish_reason="stop")
    assert c["category"] == "strict" and c["correct"] and c["correct_lenient"]


def test_population_metrics_strict_and_lenient_on_known_population():
    def cand(a, ok, la, lok, cat, tr=False):
        return dict(answer=a, correct=ok, answer_lenient=la, correct_lenient=lok, category=cat, truncated=tr,
                    prompt_tokens=1, completion_tokens=1)

    pop = [cand("5", True, "5", True, "strict"), cand(None, False, "5", True, "lenient_only", True),
           cand(None, False, "5", True, "lenient_only"), cand("4", False, "4", False, "strict"),
           cand(None, False, None, False, "unparsed", True)]
    m = population_metrics(pop, str.__eq__)
    assert m["mean_acc"] == pytest.approx(1 / 5) and m["mean_acc_lenient"] == pytest.approx(3 / 5)
    assert m["majority_acc"] == 1.0  # strict answers "5" and "4" tie, the first wins
    assert m["majority_acc_lenient"] == 1.0 and m["pass_at_n"] == 1.0
    assert (m["strict_frac"], m["lenient_only_frac"], m["unparsed_frac"], m["truncated_frac"]) == (0.4, 0.4, 0.2, 0.4)
    pop[0] = cand(None, False, "5", True, "lenient_only")
    m = population_metrics(pop, str.__eq__)
    assert m["majority_acc"] == 0.0 and m["majority_acc_lenient"] == 1.0  # strict vote: only "4" is readable
    assert standard_error([1.0]) != standard_error([1.0])  # NaN for one problem
    assert standard_error([0.0, 1.0]) == pytest.approx(0.5)


# ------------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize("text,expected", [
    ("True", True), ("False", False), ("true.", True), ("FALSE", False),
    ("The answer is not correct", None),        # old reader: first word "correct" -> True
    ("not correct. False", False),
    ("True? No: False", False),                 # the last one, as the authors read it
    ("False at first, but it is True", True),
    ("yes", None), ("incorrect", None), ("", None), (None, None),
])
def test_verdict_reads_the_last_true_or_false(text, expected):
    assert parse_verdict(text) is expected


# ----------------------------------------------------------------------- structured runs
def test_structure_setting_and_shape():
    assert structure_on(Config(backend="default")) and not structure_on(Config(backend="scripted"))
    assert structure_on(Config(backend="scripted", structured="on"))
    assert not structure_on(Config(backend="default?threads=1", structured="off"))
    assert structure_on(Config(backend="default?threads=1"))
    with pytest.raises(ValueError, match="structured must be"):
        Config(structured="yes")
    rg = ReasoningGymTask("chain_sum", size=2, seed=0, config=EASY)
    st = answer_structure(rg, rg.problems, 30)
    assert st.matches("4 + 2 = 6 <answer>6</answer>") and not st.matches("<answer>six</answer>")
    calc = answer_structure(rg, rg.problems, 10, reasoning="calculation")
    assert calc.matches("4 + 2 = <answer>6</answer>") and not calc.matches("4 + 2 = 6 <answer>6</answer>")
    assert not calc.matches("<answer>6</answer>") and not calc.matches("it is = <answer>6</answer>")
    assert not st.matches("x" * 31 + "<answer>6</answer>")
    assert answer_structure(MathTask([Problem("a", "q", "1")]), [], 30) is None  # boxed math stays free


def _structured_responder(prompt, req):
    text = prompt_text(prompt)
    if "Answer True or False" in text:
        return "True" if req.seed % 3 else "False"
    return f"1 + 2 = <answer>{random.Random(req.seed).randint(-9, 18)}</answer>"


def test_structured_run_records_strict_lenient_shares_and_paired_comparisons():
    cfg = Config(backend="scripted", structured="on", task="rg:chain_sum", n_problems=4, population=4,
                 subset_size=2, steps=2, max_reasoning_chars=30)
    llm = load_llm("scripted", responses=_structured_responder, cache="off")
    res = run(cfg, llm=llm, progress=False)
    assert res["structure"]["kind"] == "regex" and res["structure"]["pattern"].startswith("[0-9 +")  # calculation form
    free = run(Config(**{**cfg.__dict__, "reasoning": "free", "baselines": ()}), progress=False,
               llm=load_llm("scripted", responses=_structured_responder, cache="off"))
    assert free["structure"]["kind"] == "reason_then_answer" and free["structure"]["max_reasoning_chars"] == 30
    assert all(c["category"] == "strict" for pop in res["rsa"]["populations"] for row in pop for c in row)
    sh = res["parse_shares"]["rsa"]
    assert [x["strict_frac"] for x in sh] == [1.0, 1.0] and [x["truncated_frac"] for x in sh] == [0.0, 0.0]
    s = res["summary"]
    assert s["rsa"]["strict_frac"] == 1.0 and s["rsa"]["unparsed_frac"] == 0.0
    # the paired difference is RSA's final per-problem mean accuracy minus the baseline's, averaged
    rsa_final = [sum(c["correct"] for c in row) / 4 for row in res["rsa"]["populations"][-1]]
    mv = res["baselines"]["majority_vote"]["steps"][-1]["per_problem_accuracy"]
    d = [a - b for a, b in zip(rsa_final, mv)]
    assert res["comparisons"]["rsa_minus_majority_vote"]["diff"] == pytest.approx(sum(d) / 4)
    assert res["comparisons"]["rsa_minus_majority_vote"]["se"] == pytest.approx(standard_error(d))
    assert set(s["baselines_lenient"]) == set(s["baselines"])
    # verification was asked under the True/False constraint, answers under reason-then-answer
    verify_calls = [c for c in llm.calls if "Answer True or False" in prompt_text(c[0])]
    assert len(verify_calls) == 1


def test_structured_run_refuses_a_scripted_text_outside_the_structure():
    cfg = Config(backend="scripted", structured="on", task="rg:chain_sum", n_problems=1, population=2,
                 subset_size=2, steps=1, baselines=())
    llm = load_llm("scripted", responses=lambda p, r: "the answer is 5", cache="off")
    with pytest.raises(StructureViolationError):
        run(cfg, llm=llm, progress=False)


def test_unstructured_run_keeps_lenient_only_answers_out_of_the_headline():
    cfg = Config(backend="scripted", task="rg:chain_sum", n_problems=3, population=2, subset_size=2, steps=2,
                 baselines=("majority_vote",))
    task_probe = ReasoningGymTask("chain_sum", size=3, seed=0, config=EASY)
    golds = {p.question: p.answer for p in task_probe.problems}

    def right_but_untagged(prompt, req):
        text = prompt_text(prompt)
        gold = next(a for q, a in golds.items() if q in text)
        return f"so the result is {gold}"

    res = run(cfg, llm=load_llm("scripted", responses=right_but_untagged, cache="off"), progress=False)
    s = res["summary"]
    assert s["rsa"]["mean_acc_final"] == 0.0 and s["rsa"]["mean_acc_final_lenient"] == 1.0
    assert s["rsa"]["lenient_only_frac"] == 1.0 and s["rsa"]["strict_frac"] == 0.0
    assert s["baselines"]["majority_vote"] == 0.0 and s["baselines_lenient"]["majority_vote"] == 1.0
