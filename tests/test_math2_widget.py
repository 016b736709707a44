"""The review station writes accept / edit / reject to the annotation store and filters by skill and status."""
from __future__ import annotations

from workbench.llm import load_llm
from workbench.math2 import AnnotationStore, run_pipeline

from tests.test_math2 import cfg, make_responder, toy_repo
from widgets.math2 import review_station, square_law_figure, trail_html, yield_figure


def _cands():
    pair = lambda t: "# FINAL ANSWER: No" if ("fractions" in t and "percentages" in t) else "# FINAL ANSWER: Yes"
    llm = load_llm("scripted", responses=make_responder(pair=pair), cache="off")
    return run_pipeline(toy_repo(), llm, cfg(), progress=False)


def test_review_station_writes_to_store(tmp_path):
    out = _cands()
    cands = out["candidates"]
    store = AnnotationStore(tmp_path / "a.sqlite")
    store.add_generated(cands)
    st = review_station(cands, store)
    assert len(st.picker.options) == 3
    # the pair rejected at stage 1 has no question: listed, not editable
    st.status_filter.value = "dropped"
    assert len(st.picker.options) == 1 and st.accept_button.disabled
    st.status_filter.value = "kept"
    kept_ids = [v for _, v in st.picker.options]
    assert len(kept_ids) == 2 and not st.accept_button.disabled
    st.picker.value = kept_ids[0]
    assert "4. rubric validation" in st.trail.value and "FINAL ANSWER" in st.trail.value
    st.question.value = "What is 50% of 2?"
    st.answer.value = "1"
    st.edit_button.click()
    st.accept_button.click()
    assert [h["action"] for h in store.history(kept_ids[0])] == ["generated", "edit", "accept"]
    assert store.latest(kept_ids[0])["question"] == "What is 50% of 2?"
    st.picker.value = kept_ids[1]
    st.reject_button.click()  # no reason given: refused, nothing written
    assert "reason" in st.message.value and len(store.history(kept_ids[1])) == 1
    st.reason.value = "too easy"
    st.reject_button.click()
    assert store.latest(kept_ids[1])["status"] == "rejected"
    st.status_filter.value = "accepted"
    assert [v for _, v in st.picker.options] == [kept_ids[0]]
    # skill filter
    st.status_filter.value = "(all)"
    st.skill_filter.value = "area"
    assert all("area" in st.cands[v]["skills"] for _, v in st.picker.options)


def test_read_only_station_and_figures():
    out = _cands()
    st = review_station(out["candidates"], None)
    assert st.accept_button.disabled and "read-only" in st.message.value
    html = trail_html(out["candidates"][0], show_prompts=True)
    assert "1. skill-pair validation" in html and "&lt;" not in html.split("prompt")[0]
    fig = yield_figure(out["yields"])
    assert list(fig.data[0].x)[0] == 3
    sq = square_law_figure({"paper_table": [{"model": "m", "math": 50, "math2": 25}], "points": {"x": [0.5, 0.2]}})
    assert len(sq.data) == 4
