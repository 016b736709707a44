"""workbench.confidence scoring rules: strict vs lenient reads, copied menus and templates, structured
formats, aggregation denominators, environment-only action success, bins_closed and the parse/truncation
shares recorded per policy (scripted backend; no model)."""
import numpy as np
import pytest

from workbench import calibration as cal
from workbench.confidence import Config, agent, policies, run, tasks
from workbench.confidence.agent import SKILLS, parse_skill, read_lenient
from workbench.confidence.envs import make_env
from workbench.llm import StructureViolationError, load_llm

from tests.test_confidence import _obs  # Observation from rows of names, player at the centre

MENU = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(SKILLS))
ACTION_PROMPT = f"Map\n\nQuestion: Your goal: find water. Which skill should you use next? Skills:\n{MENU}\n" \
                "Answer with the skill name.\nEnd with two lines:\nAnswer: <your answer>\nConfidence: <0-100>%"


# ------------------------------------------------------------------ copied menus and templates are not answers
def test_copied_menu_is_no_skill():
    copied = "Skills:\n" + MENU  # CoT answers by copying the menu: the first item is no answer
    assert parse_skill(copied) is None
    assert parse_skill("1. move toward tree\n2. move toward water\n3. explore") is None
    assert parse_skill("move toward tree, not explore") is None  # two skills named: ambiguous
    # the lenient reader also drops lines copied from the prompt, so the menu plus a real choice is read
    assert read_lenient("cot", "action", "skill", MENU + "\nI pick explore.", ACTION_PROMPT)[0] == "explore"
    assert read_lenient("cot", "action", "skill", MENU, ACTION_PROMPT) == (None, None)
    assert parse_skill("Answer: explore\nConfidence: 50%") == "explore"
    assert parse_skill("the menu number: 11") is None and parse_skill("Answer: 11") == "interact"


@pytest.mark.parametrize("text", ["Answer: <your answer>\nConfidence: <0-100>%", "Confidence: 0-100%",
                                  "confidence <0-100>", "G1: <guess> P1: <probability>%"])
def test_copied_template_is_no_confidence(text):
    assert policies.parse_confidence(text) is None  # was 0.0: the template's "0" read as a stated 0%
    assert policies.read_strict(text, ("yes", "no")) == (None, None)


def test_copied_template_reads_unparsed_not_zero():
    prompt = "Question: Is there water within 3 tiles of you? Answer yes or no.\n" + policies._FORMAT
    r = agent._read("vanilla", "perception", "near", "Answer: <your answer>\nConfidence: <0-100>%", prompt=prompt)
    assert r == {"answer": None, "conf": None, "answer_lenient": None, "conf_lenient": None, "parse": "unparsed"}


# --------------------------------------------------------------------------------------- strict vs lenient
@pytest.mark.parametrize("text, kind, strict, lenient, cls", [
    ("I see water.\nAnswer: yes\nConfidence: 85%", "near", ("yes", 0.85), ("yes", 0.85), "strict"),
    ("Answer: yes\nConfidence: 85%\n", "near", ("yes", 0.85), ("yes", 0.85), "strict"),
    ("Yes, there is water. I am 80% sure.", "near", (None, None), ("yes", 0.8), "lenient"),
    ("Answer: yes\nConfidence: 85", "near", (None, None), ("yes", 0.85), "lenient"),  # no % sign
    ("Answer: maybe\nConfidence: 85%", "near", (None, None), (None, 0.85), "unparsed"),
    ("Answer: left\nConfidence: 101%", "direction", (None, None), ("left", None), "unparsed"),
    ("Answer: 07\nConfidence: 50%", "count", (None, None), ("7", 0.5), "lenient"),  # no leading zeros
    ("Answer: 12\nConfidence: 5%", "count", ("12", 0.05), ("12", 0.05), "strict"),
    ("Answer: yes\nConfidence: 85%\nAnswer: no", "near", (None, None), ("yes", 0.85), "lenient"),
])
def test_strict_and_lenient_reads(text, kind, strict, lenient, cls):
    r = agent._read("vanilla", "perception", kind, text)
    assert (r["answer"], r["conf"]) == strict
    assert (r["answer_lenient"], r["conf_lenient"]) == (lenient[0], pytest.approx(lenient[1]) if lenient[1] else None)
    assert r["parse"] == cls


def test_top_k_strict_reads_the_first_guess():
    opts = tasks.ANSWER_OPTIONS["direction"]
    assert policies.read_strict("G1: up P1: 70%\nG2: left P2: 30%", opts, top_k=2) == ("up", 0.7)
    assert policies.read_strict("G1: up P1: 70%", opts, top_k=2) == (None, None)  # one line short
    assert policies.read_strict("G1: up P1: 70%\nG2: north P2: 30%", opts, top_k=2) == (None, None)


# ---------------------------------------------------------------------------------------- structured formats
def test_structures_admit_exactly_the_options():
    s = policies.stage_structure(tuple(SKILLS), 0)
    for skill in SKILLS:
        assert s.matches(f"Answer: {skill}\nConfidence: 42%")
    assert not s.matches("Answer: move toward moon\nConfidence: 42%")
    assert not s.matches("Answer: explore\nConfidence: 420%") and not s.matches("Answer: explore\nConfidence: 042%")
    r = policies.stage_structure(tasks.ANSWER_OPTIONS["count"], 30)
    assert r.matches("I count them.\nAnswer: 3\nConfidence: 100%") and r.matches("\nAnswer: 0\nConfidence: 0%")
    assert not r.matches("x" * 31 + "\nAnswer: 3\nConfidence: 10%")  # reasoning over its bound
    assert not r.matches("two lines\nof reasoning\nAnswer: 3\nConfidence: 10%")
    # what the structure admits, the strict rule reads (and nothing else)
    for text in ("I count them.\nAnswer: 3\nConfidence: 100%", "\nAnswer: 0\nConfidence: 0%"):
        assert policies.read_strict(text, tasks.ANSWER_OPTIONS["count"]) != (None, None)
    with pytest.raises(ValueError, match="reasoning_chars"):
        policies.stage_structure(("a",), -1)


def _scripted(responses, **kw):
    base = dict(backend="scripted", tasks=("find_water",), max_steps=2, worlds_per_task=1,
                elicitation=("vanilla", "cot"), execution=(), question_kinds=("near",))
    base.update(kw)
    return Config(**base), load_llm("scripted", responses=responses, cache="off")


def test_structured_on_sends_the_constraint():
    good = {"Skills:": "Answer: explore\nConfidence: 50%", "step by step": "It is near.\nAnswer: yes\nConfidence: 70%",
            None: "Answer: no\nConfidence: 30%"}
    cfg, llm = _scripted(good, structured="on")
    r = run(cfg, llm=llm, progress=False)
    assert r["structured"] is True
    for name in ("vanilla", "cot"):
        for stage in ("perception", "action"):
            assert r["table"][name][stage]["strict"] == 1.0
    # a text the constraint forbids (free reasoning on two lines; the vanilla format without reasoning)
    cfg, llm = _scripted({**good, "step by step": "It is near.\nVery near.\nAnswer: yes\nConfidence: 70%"},
                         structured="on")
    with pytest.raises(StructureViolationError):
        run(cfg, llm=llm, progress=False)
    with pytest.raises(ValueError, match="structured"):
        Config(structured="yes").validate()


def test_parse_shares_and_truncation_per_policy():
    responses = {"Skills:": "Answer: explore\nConfidence: 50%",
                 "step by step": "There is water close to me, so yes. Answer: yes\nConfidence: 70%",
                 None: "Yes. I am 80% sure."}
    cfg, llm = _scripted(responses, max_tokens=6)  # scripted tokens are words: the cot text is cut
    r = run(cfg, llm=llm, progress=False)
    van, cot = r["table"]["vanilla"]["perception"], r["table"]["cot"]["perception"]
    assert (van["strict"], van["lenient_only"], van["unparsed"], van["truncated"]) == (0.0, 1.0, 0.0, 0.0)
    assert van["n_cal"] == 0 and van["answer_unreadable"] == 1.0 and van["accuracy"] == 0.0  # headline strict
    assert van["n_cal_lenient"] == van["n"]
    assert cot["truncated"] == 1.0 and cot["strict"] == 0.0
    steps = [s for ep in r["episodes"] if ep["combo"] == "cot" for s in ep["steps"]]
    assert all(s["perception"]["finish"] == ["length"] for s in steps)
    assert r["table"]["vanilla"]["action"]["strict"] == 1.0


# ------------------------------------------------------------------------------- aggregation denominators
def test_aggregation_counts_every_sample():
    r = policies.aggregate(["a", None, None], [0.9, None, None], "consistency")
    assert r["answer"] == "a" and r["conf"] == pytest.approx(1 / 3)  # was 1.0 (1 readable of 3)
    r = policies.aggregate(["a", None, None], [0.9, 0.9, 0.9], "avg_conf")
    assert r["conf"] == pytest.approx(1 / 3)
    # equal confidences: avg_conf's shares are consistency's
    ans = ["a", "b", "a", None, "a"]
    for c in (0.2, 0.7):
        assert policies.aggregate(ans, [c] * 5, "avg_conf")["conf"] == pytest.approx(
            policies.aggregate(ans, [c] * 5, "consistency")["conf"]) == pytest.approx(3 / 5)
    assert policies.aggregate([None, None], [0.5, 0.5])["conf"] is None


def test_execution_policy_step_confidence_uses_all_k_samples():
    texts = iter(["Answer: explore\nConfidence: 50%", "no idea", "no idea"] * 50)
    cfg, llm = _scripted(lambda p, r=None: next(texts) if "Skills:" in p else "Answer: no\nConfidence: 30%",
                         elicitation=(), execution=("action_sampling",), execution_on=("vanilla",), k_samples=3,
                         max_steps=1)
    r = run(cfg, llm=llm, progress=False)
    (step,) = [s for ep in r["episodes"] for s in ep["steps"]]
    assert step["action"]["answers"] == ["explore", None, None] and step["action"]["conf"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------ success from the environment
def test_progress_is_the_tasks_not_the_skills():
    g, t, w, p = "grass", "tree", "water", "player"
    before = _obs([[t, g, g, g, w], [g] * 5, [g, g, p, g, g], [g] * 5, [g] * 5])  # tree (-2, -2), water (2, -2)
    # one step left: the view shifts right; the tree is 3 away, the water is out of view
    toward_tree = _obs([[g, t, g, g, g], [g] * 5, [g, g, p, g, g], [g] * 5, [g] * 5])
    find_water, find_tree = tasks.get_tasks(["find_water", "find_tree"])
    assert not tasks.task_progress(find_water, before, toward_tree)  # the old skill rule called this a success
    assert tasks.task_progress(find_tree, before, toward_tree)
    near_water = _obs([[g, g, g, g, g], [g, g, g, g, g], [g, g, p, w, g], [g, g, g, g, g], [g, g, g, g, g]])
    assert tasks.task_progress(find_water, before, near_water)  # adjacent: the task is done
    gone = _obs([[g] * 5 for _ in range(5)])
    gone.grid[2][2] = p
    assert not tasks.task_progress(find_water, before, gone)  # out of view is not closer
    assert tasks.task_progress(find_water, gone, before)  # coming into view is


def test_action_success_in_a_run_is_decided_by_the_environment():
    """find_water with an agent that always walks toward trees: each step's success is recomputed by
    replaying the primitives in a fresh world and checking the water's distance, never the tree's."""
    cfg, llm = _scripted({"Skills:": "Answer: move toward tree\nConfidence: 90%", None: "Answer: no\nConfidence: 30%"},
                         elicitation=("vanilla",), max_steps=4, worlds_per_task=3)
    r = run(cfg, llm=llm, progress=False)
    task = tasks.get_tasks(["find_water"])[0]
    checked = effects = 0
    for ep in r["episodes"]:
        env = make_env("crafter", ep["world_seed"], task)
        obs = env.last
        for s in ep["steps"]:
            d0 = tasks._distance(obs, "water")
            for a in s["primitives"]:
                obs, _ = env.step(a)
            d1 = tasks._distance(obs, "water")
            assert s["action"]["success"] == (d1 < d0 or d1 <= 1)
            effects += s["action"]["skill_effect"] and not s["action"]["success"]
            checked += 1
    assert checked >= 3
    assert effects >= 1  # the tree got closer without progress on the task: not a success


def test_action_outcome_task_setting():
    cfg, llm = _scripted({"Skills:": "Answer: move toward water\nConfidence: 90%", None: "Answer: no\nConfidence: 30%"},
                         elicitation=("vanilla",), max_steps=3, action_outcome="task")
    r = run(cfg, llm=llm, progress=False)
    for ep in r["episodes"]:
        assert [s["action"]["success"] for s in ep["steps"]] == [s["task_success"] for s in ep["steps"]]
    with pytest.raises(ValueError, match="action_outcome"):
        Config(action_outcome="skill").validate()


# ---------------------------------------------------------------------------------------- bins_closed setting
def test_bins_closed_is_a_setting_of_the_run():
    """Confidences on a 10% grid (0.7 sits on an edge): the run's ECE follows cfg.bins_closed, and each
    equals calibration.ece on the same points under that convention."""
    responses = {"Skills:": "Answer: explore\nConfidence: 70%", None: "Answer: no\nConfidence: 80%"}
    eces = {}
    for closed in ("left", "right"):
        cfg, llm = _scripted(responses, elicitation=("vanilla",), max_steps=3, worlds_per_task=2, bins_closed=closed)
        r = run(cfg, llm=llm, progress=False)
        steps = [s["action"] for ep in r["episodes"] for s in ep["steps"]]
        want = cal.ece([s["conf"] for s in steps], [int(s["success"]) for s in steps], bins_closed=closed)
        assert r["table"]["vanilla"]["action"]["ece"] == pytest.approx(want)
        assert r["reliability"]["vanilla"]["action"]["bins_closed"] == closed
        eces[closed] = want
    with pytest.raises(ValueError, match="bins_closed"):
        Config(bins_closed="both").validate()


# ---------------------------------------------------------------------------- standard errors and effects
def test_effects_are_differences_with_standard_errors():
    cfg, llm = _scripted({"Skills:": "Answer: explore\nConfidence: 60%",
                          "step by step": "Water.\nAnswer: yes\nConfidence: 90%", None: "Answer: no\nConfidence: 30%"},
                         max_steps=3, worlds_per_task=2, n_boot=50)
    r = run(cfg, llm=llm, progress=False)
    e = r["effects"]["cot - vanilla"]["perception"]
    t = r["table"]
    assert e["ece"] == pytest.approx(t["cot"]["perception"]["ece"] - t["vanilla"]["perception"]["ece"])
    assert e["ece_se"] == pytest.approx(np.hypot(t["cot"]["perception"]["ece_se"], t["vanilla"]["perception"]["ece_se"]))
    assert t["cot"]["perception"]["ece_se"] > 0  # the outcomes vary across steps
