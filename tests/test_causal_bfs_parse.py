"""causal_bfs answer reading: the strict rule (the authors' <Answer> format) against the lenient
fallback, each parser case that used to go wrong, and scoring that keeps the two apart."""
import pytest

from workbench import causal_bfs as cb
from workbench.causal_bfs.parse import parse_answer, parse_choice, scan_names
from workbench.llm import SamplingParams, load_llm

ASIA = ["asia", "tub", "smoke", "lung", "bronc", "either", "xray", "dysp"]
CHILD_PART = ["CO2", "CO2Report", "LVH", "LVHreport", "Age"]


def test_negation_is_not_an_answer():
    # used to add xray->bronc and xray->lung: the last line names what xray does NOT cause
    r = parse_answer("The variables not caused by xray are lung and bronc", ASIA)
    assert r.method == "none" and r.names == [] and r.note == "negation"
    r = parse_answer("xray does not cause lung.\nxray causes dysp.", ASIA)
    assert r.names == ["xray", "dysp"]  # the negated sentence is skipped, the affirmative one read
    r = parse_answer("<Answer>dysp, not lung</Answer>", ASIA, "lenient")
    assert r.method == "strict" and r.names == ["dysp"] and r.unknown == ["not lung"]


def test_multi_word_names_match_the_longest_variable():
    r = parse_answer("<Answer>CO2 Report</Answer>", CHILD_PART)  # used to read CO2
    assert r.names == ["CO2Report"] and r.method == "lenient:tag"
    assert scan_names("the co2_report and LVH report, then CO2", CHILD_PART) == ["CO2Report", "LVHreport", "CO2"]
    assert scan_names("CO2Reports", CHILD_PART) == []  # never inside a longer word
    assert parse_answer("<Answer>CO2Report, CO2</Answer>", CHILD_PART, "strict").names == ["CO2Report", "CO2"]


@pytest.mark.parametrize("echo", ["<Answer>...</Answer>", "<Answer>name_1, name_2</Answer>",
                                  "Think step by step. <Answer>A/B/C</Answer>", "<Answer> - </Answer>"])
def test_echoed_template_is_unparsed_not_an_empty_answer(echo):
    for rule in ("strict", "lenient"):
        r = parse_answer(echo, ASIA, rule)
        assert r.method == "none" and not r.parsed, (echo, rule)


def test_explicit_none_is_an_empty_answer():
    for text in ("<Answer></Answer>", "<Answer>none</Answer>", "<Answer> none </Answer>"):
        r = parse_answer(text, ASIA, "strict")
        assert r.method == "strict" and r.names == []
    assert parse_answer("after thinking:\nNone", ASIA).method == "lenient:last_line"
    assert parse_answer("nothing to say", ASIA, "strict").method == "none"


def test_strict_against_lenient_rules():
    assert parse_answer("<Answer>tub, lung</Answer>", ASIA, "strict").names == ["tub", "lung"]
    assert parse_answer("so <Answer>tub, dragon</Answer>", ASIA, "strict").unknown == ["dragon"]
    # the strict rule wants the exact-case, closed tag and exact names; the lenient one reads the rest
    for text, lenient_method, names in [
            ("<answer>tub</answer>", "lenient:tag", ["tub"]),
            ("<Answer>Tub, LUNG", "lenient:tag", ["tub", "lung"]),  # unclosed (truncated) and case
            ("<Answer>lung cancer</Answer>", "lenient:tag", ["lung"]),
            ("I think the effects are\n**tub** and lung.", "lenient:last_line", ["tub", "lung"]),
            ("Smoking can cause lung problems.\nThat is all.", "lenient:text", ["lung"])]:
        assert parse_answer(text, ASIA, "strict").method == "none", text
        r = parse_answer(text, ASIA, "lenient")
        assert (r.method, r.names) == (lenient_method, names), text
    assert parse_answer("tuberculosis", ASIA).names == []  # no matches inside words
    with pytest.raises(ValueError, match="rule must be"):
        parse_answer("x", ASIA, "loose")


def test_pairwise_sentence_initial_article_is_not_option_a():
    assert parse_choice("A smoker is more likely to get lung cancer.") == (None, "none")
    assert parse_choice("A patient who smokes...\nA high risk.") == (None, "none")
    assert parse_choice("The answer is a guess") == (None, "none")
    # forms that do name an option
    assert parse_choice("So the answer is B.") == ("B", "lenient:last_line")
    assert parse_choice("A. \"smoke\" causes \"lung\".") == ("A", "lenient:last_line")
    assert parse_choice("I pick (C)\nbecause no link") == ("C", "lenient:text")
    assert parse_choice("<answer> (b)") == ("B", "lenient:tag")


def test_pairwise_strict_rule_and_echoes():
    assert parse_choice("reasoning <Answer>B</Answer>", "strict") == ("B", "strict")
    assert parse_choice("<answer>B</answer>", "strict") == (None, "none")
    for echo in ("<Answer>A/B/C</Answer>", "A. x causes y.\nB. y causes x.\nC. no relation."):
        assert parse_choice(echo) == (None, "none"), echo  # copied options: unreadable, never option A


def test_pairwise_unreadable_is_its_own_category():
    prob = cb.load_problem("asia")
    replies = ["A smoker, I think."] * 10 + ["<Answer>A</Answer>"] * 10 + ["answer is (B)"] * 8
    llm = load_llm("scripted", responses=replies, cache="off")
    res = cb.pairwise_discover(llm, prob, SamplingParams(max_tokens=8), 0)
    assert res["parse"]["unparsed"] == 10 and res["parse"]["strict"] == 10 and res["parse"]["lenient_only"] == 8
    assert res["choices"] == {"A": 10, "unparsed": 18}  # strict reading: the lenient B's are not used
    assert len(res["edges"]) == 10 and len(res["edges_lenient"]) == 18
    lenient = cb.pairwise_discover(load_llm("scripted", responses=replies, cache="off"), prob,
                                   SamplingParams(max_tokens=8), 0, parse_rule="lenient")
    assert lenient["choices"] == {"A": 10, "B": 8, "unparsed": 10}


def test_bfs_strict_traversal_with_lenient_reread():
    prob = cb.load_problem("asia")

    def replies(prompt, req):
        from workbench.llm import prompt_text
        t = prompt_text(prompt)
        if "caused by smoke." in t:
            return "<Answer>lung, bronc</Answer>"
        if "caused by lung." in t:
            return "lung leads to either"  # no tag: only the lenient fallback reads it
        if "caused by" in t:
            return "<Answer>none</Answer>"
        return "<Answer>smoke</Answer>"

    res = cb.bfs_discover(load_llm("scripted", responses=replies, cache="off"), prob, SamplingParams(max_tokens=8), 0)
    assert res["edges"] == [["smoke", "bronc"], ["smoke", "lung"]]
    assert res["edges_lenient"] == [["lung", "either"], ["smoke", "bronc"], ["smoke", "lung"]]
    p = res["parse"]
    assert (p["strict"], p["lenient_only"], p["unparsed"]) == (res["queries"] - 1, 1, 0)
