"""widgets.embodied_confidence: the table, reliability figure, timeline and trace viewer from a scripted run."""
import pytest

from widgets import embodied_confidence as view
from workbench.confidence import ELICITATION, Config, run
from workbench.llm import load_llm


@pytest.fixture(scope="module")
def results():
    cfg = Config(backend="scripted", tasks=("find_tree",), max_steps=2, execution=("action_sampling",),
                 elicitation=ELICITATION, worlds_per_task=1)
    llm = load_llm("scripted", responses={"Skills:": "Answer: move toward tree\nConfidence: 80%",
                                          "step by step": "no idea", None: "Answer: yes\nConfidence: 60%"},
                   cache="off")
    return run(cfg, llm=llm, progress=False)


def test_table_has_paper_numbers_beside(results):
    df = view.results_table(results)
    assert list(df.index) == results["combos"]
    assert df.loc["cot", "paper AUROC"] == pytest.approx(0.83) and df.loc["top_k", "paper ECE"] == pytest.approx(0.17)
    assert df.loc["cot", "unparsed"] == 1.0 and df.loc["cot", "calibrated"] == 0.0  # 'no idea' is read as nothing
    assert df.loc["vanilla", "ECE"] == pytest.approx(results["table"]["vanilla"]["perception"]["ece"])
    # one unit: steps is a count, the parse columns are shares of completions (action sampling sends 3 a step)
    act = view.results_table(results, "action")
    assert act.loc["vanilla+action_sampling", "steps"] == results["table"]["vanilla+action_sampling"]["action"]["n"]
    assert results["table"]["vanilla+action_sampling"]["action"]["n_completions"] == 3 * act.loc["vanilla+action_sampling", "steps"]
    cols = ["parsed strict", "lenient only", "unparsed"]
    assert list(act[cols].sum(axis=1)) == pytest.approx([1.0] * len(act)) and (act[cols + ["truncated"]] <= 1).all().all()


def test_effects_table(results):
    e = view.effects_table(results)
    row = e[(e.comparison == "cot - vanilla") & (e.stage == "action")].iloc[0]
    t = results["table"]
    assert row["ECE diff"] == pytest.approx(t["cot"]["action"]["ece"] - t["vanilla"]["action"]["ece"])


def test_reliability_and_timeline(results):
    fig = view.reliability_figure(results, "action")
    names = [t.name for t in fig.data]
    assert "perfect calibration" in names and "vanilla" in names and "cot" in names
    van = next(t for t in fig.data if t.name == "vanilla")
    assert list(van.x) == [pytest.approx(0.8)]  # every action confidence was 0.8: one bin
    ep = results["episodes"][0]
    tl = view.timeline_figure(ep)
    assert list(tl.data[0].y) == [s["perception"]["conf"] for s in ep["steps"]]


def test_step_html_and_viewer(results):
    ep = results["episodes"][0]
    h = view.step_html(ep, 0)
    assert "data:image/png;base64," in h and ep["steps"][0]["question"] in h and "0.60" in h
    w = view.trace_viewer(results)
    pick, step = w.children[0].children
    pick.value = len(results["episodes"]) - 1
    assert step.max == len(results["episodes"][-1]["steps"]) - 1
