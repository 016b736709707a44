"""Structured outputs (workbench.llm.structure): construction checks, cache keys, the scripted backend's
check, the request bodies sent to OpenAI-compatible servers and vLLM, and constrained decoding on the
embedded model (validity per kind, batch == single, stop strings, truncation, greedy = argmax over the
allowed tokens). The shared per-backend cases are in test_llm_conformance.py; the 200-prompt
conformance run is the slow test at the end."""
from __future__ import annotations

import dataclasses
import json
import re
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench.llm import (Choice, Grammar, JsonSchema, LLMError, Regex, SamplingParams, StructureUnsupportedError,
                           StructureViolationError, load_llm, reason_then_answer)
from workbench.llm.structure import ReasonThenAnswer, openai_fields, regex_escape, xgrammar_accepts

SCHEMA = {"type": "object",
          "properties": {"answer": {"type": "string", "maxLength": 20},
                         "confidence": {"type": "integer", "minimum": 0, "maximum": 100}},
          "required": ["answer", "confidence"]}


# ------------------------------------------------------------------------------------ construction
@pytest.mark.parametrize("make, match", [
    (lambda: Regex("(unclosed"), r"invalid regex '\(unclosed'"),
    (lambda: Regex(r"(?=a)b"), r"not supported by constrained decoding.*Lookahead"),
    (lambda: Regex(r"(a)\1"), r"Backreference"),
    (lambda: Regex(""), "empty"),
    (lambda: Choice([]), "at least one option"),
    (lambda: Choice(["a", ""]), "non-empty"),
    (lambda: Choice(["a", "b", "a"]), r"repeat: \['a'\]"),
    (lambda: JsonSchema({"type": "integer", "minimum": "zero"}), "invalid JSON schema at minimum"),
    (lambda: JsonSchema({"type": "objectx"}), "invalid JSON schema"),
    (lambda: JsonSchema("{not json"), "not JSON"),
    (lambda: Grammar('root ::= "a" | '), "invalid EBNF grammar"),
    (lambda: Grammar("rule ::= [a-z]+"), "invalid EBNF grammar"),  # no root rule
    (lambda: reason_then_answer(Regex("[0-9]"), max_reasoning_chars=-1), "max_reasoning_chars"),
    (lambda: reason_then_answer(Regex("[0-9]"), open=""), "non-empty"),
])
def test_bad_structures_are_value_errors_naming_the_problem(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="write Choice"):
        Choice("yes")
    with pytest.raises(TypeError, match="takes a dict"):
        JsonSchema(["not", "a", "schema"])
    with pytest.raises(TypeError, match="Regex, Choice, JsonSchema or Grammar"):
        ReasonThenAnswer("[0-9]")
    with pytest.raises(TypeError, match="structure must be None or"):
        SamplingParams(structure=r"[0-9]+")


def test_structures_are_frozen_hashable_and_canonical():
    a = JsonSchema({"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "string"}}})
    b = JsonSchema({"properties": {"y": {"type": "string"}, "x": {"type": "integer"}}, "type": "object"})
    assert a == b and hash(a) == hash(b) and a.schema == b.schema
    assert {Regex("a"), Regex("a"), Choice(["a"])} == {Regex("a"), Choice(["a"])}
    assert Regex("a") != Grammar('root ::= "a"')
    with pytest.raises(dataclasses.FrozenInstanceError):
        Regex("a").pattern = "b"
    assert Choice(["x", "y"]).options == ("x", "y")
    p = SamplingParams(structure=a)
    assert p.replace(max_tokens=3).structure == a


def test_choice_and_tags_escape_to_the_same_language_in_re_and_xgrammar():
    """The regex we derive (sent to vLLM) and the EBNF (our loop) accept exactly the options, checked by
    two engines: Python's re and xgrammar's matcher."""
    opts = ["a+b", "(x)", "1.5", "[y]?", 'say "hi"', "back\\slash", "tab\there", "line\nbreak", "é ü", "a|b"]
    c = Choice(opts)
    for o in opts:
        assert re.fullmatch(c.regex(), o), o
        assert xgrammar_accepts(c, o), o
        assert re.fullmatch(regex_escape(o), o)
    for wrong in ["ab", "x", "15", "a", "line"]:
        assert not re.fullmatch(c.regex(), wrong) and not xgrammar_accepts(c, wrong)
    rta = reason_then_answer(c, max_reasoning_chars=10, open="[[", close="]]")
    assert rta.matches("thinking[[a|b]]") and xgrammar_accepts(rta, "thinking[[a|b]]")
    assert not rta.matches("thinking [[a|b]") and not xgrammar_accepts(rta, "thinking [[a|b]")


@pytest.mark.parametrize("text, ok", [
    ("short.<answer>42</answer>", True),
    ("<answer>7</answer>", True),  # no reasoning at all
    ("x" * 30 + "<answer>7</answer>", True),
    ("x" * 31 + "<answer>7</answer>", False),  # reasoning over the bound
    ("a < b so<answer>7</answer>", False),  # the reasoning may not hold the tag's first character
    ("so<answer>seven</answer>", False),
    ("so<answer>7</answer> more", False),
    ("so<answer>7", False),
])
def test_reason_then_answer_agrees_with_xgrammar(text, ok):
    for answer in (Regex(r"[0-9]{1,3}"), Grammar("root ::= [0-9] [0-9]? [0-9]?")):  # regex and grammar paths
        rta = reason_then_answer(answer, max_reasoning_chars=30)
        assert rta.matches(text) is ok
        assert xgrammar_accepts(rta, text) is ok


def test_json_schema_checks_agree_with_xgrammar():
    js = JsonSchema(SCHEMA)
    for text, ok in [('{"answer": "Paris", "confidence": 90}', True),
                     ('{"answer": "Paris", "confidence": 101}', False),  # maximum enforced
                     ('{"answer": "Paris"}', False), ('{"answer": "P", "confidence": 5', False)]:
        assert js.matches(text) is ok
        assert xgrammar_accepts(js, text) is ok
    rta = reason_then_answer(js, max_reasoning_chars=40)
    assert rta.vllm_fields().keys() == {"grammar"}  # no regex for a schema: sent as EBNF
    good = 'It is Paris.<answer>{"answer": "Paris", "confidence": 90}</answer>'
    assert rta.matches(good) and xgrammar_accepts(rta, good)
    assert Grammar(rta.to_ebnf()).matches(good)  # the EBNF we send parses back to the same language


# ---------------------------------------------------------------------------------------- cache key
def test_cache_key_includes_the_structure(tmp_path):
    llm = load_llm("scripted", responses=["7"], cache="readwrite", cache_dir=str(tmp_path))
    from workbench.llm.backend import Request

    r = Request(0, 0, "q", 1)

    def key(structure):
        return llm.cache.key(llm._cache_payload(r, SamplingParams(structure=structure)))

    plain = llm._cache_payload(r, SamplingParams())
    assert "structure" not in plain["params"]  # unstructured keys are as before
    keys = [key(None), key(Regex("[0-9]")), key(Regex("[0-9]+")), key(Choice(["7", "8"])), key(Choice(["8", "7"])),
            key(JsonSchema({"type": "integer"})), key(Grammar('root ::= "7"')),
            key(reason_then_answer(Regex("[0-9]"), 10)), key(reason_then_answer(Regex("[0-9]"), 11))]
    assert len(set(keys)) == len(keys)
    assert key(JsonSchema({"type": "integer", "minimum": 0})) == key(JsonSchema('{"minimum": 0, "type": "integer"}'))
    # end to end: a cached structured answer is not served to a request under another structure
    p = SamplingParams(structure=Regex("[0-9]"), seed=3)
    assert not llm.generate(["q"], p)[0].cached and llm.generate(["q"], p)[0].cached
    assert not llm.generate(["q"], p.replace(structure=Choice(["7"])))[0].cached


# ----------------------------------------------------------------------------------------- scripted
def test_scripted_checks_each_response_against_the_structure():
    ok = load_llm("scripted", responses=["B", "C"], cache="off")
    out = ok.generate(["q1", "q2"], SamplingParams(structure=Choice(["A", "B", "C"])))
    assert [c.text for c in out] == ["B", "C"]
    cases = [(["D"], Choice(["A", "B"])), (["12a"], Regex("[0-9]+")), (['{"confidence": 300}'], JsonSchema(SCHEMA)),
             (["not json"], JsonSchema(SCHEMA)), (["(ab"], Grammar('root ::= "(" [a-z]+ ")"')),
             (["7"], reason_then_answer(Regex("[0-9]")))]
    for responses, s in cases:
        bad = load_llm("scripted", responses=responses, cache="off")
        with pytest.raises(StructureViolationError, match="scripted response to prompt 0"):
            bad.generate(["q"], SamplingParams(structure=s))


def test_scripted_structure_checked_before_stop_and_truncation():
    s = reason_then_answer(Regex("[0-9]+"), max_reasoning_chars=100)
    llm = load_llm("scripted", responses=["one two three four <answer>4</answer>"], cache="off")
    c = llm.generate(["q"], SamplingParams(structure=s, max_tokens=2))[0]
    assert (c.text, c.finish_reason) == ("one two", "length") and not s.matches(c.text)
    c = llm.generate(["q"], SamplingParams(structure=s, stop=("</answer>",)))[0]
    assert c.text == "one two three four <answer>4" and c.finish_reason == "stop"


# ------------------------------------------------------------------------------------------- openai
class _Server:
    """Loopback chat server: answers ``reply`` (text, finish_reason) or ``(status, body)`` errors."""

    def __init__(self, reply=("ok", "stop"), status=200):
        self.reply, self.status, self.bodies = reply, status, []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if outer.status != 200:
                    data = outer.reply.encode()
                else:
                    text, finish = outer.reply
                    data = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                    "finish_reason": finish}],
                                       "usage": {"prompt_tokens": 3, "completion_tokens": 2}}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


def _openai(srv):
    return load_llm(f"openai:{srv.url}#m?retries=0", cache="off")


@pytest.mark.parametrize("structure, reply, field", [
    (Regex("[0-9]{1,2}"), "42", {"structured_outputs": {"regex": "[0-9]{1,2}"}}),
    (Choice(["A", "B"]), "B", {"structured_outputs": {"choice": ["A", "B"]}}),
    (Grammar('root ::= "x"+'), "xxx", {"structured_outputs": {"grammar": 'root ::= "x"+'}}),
    (JsonSchema(SCHEMA), '{"answer": "a", "confidence": 1}',
     {"response_format": {"type": "json_schema", "json_schema": {"name": "structure", "schema": SCHEMA, "strict": True}}}),
    (reason_then_answer(Choice(["A", "B"]), 50), "hm<answer>A</answer>",
     {"structured_outputs": {"regex": "[^<]{0,50}<answer>(?:(?:A|B))</answer>"}}),
])
def test_openai_request_body_carries_the_structure(server, structure, reply, field):
    server.reply = (reply, "stop")
    llm = _openai(server)
    c = llm.generate(["q"], SamplingParams(max_tokens=9, structure=structure))[0]
    body = server.bodies[-1]
    assert {k: body[k] for k in field} == field
    assert "structured_outputs" not in body or "response_format" not in body
    assert c.text == reply and c.finish_reason == "stop"
    llm.generate(["q"], SamplingParams(max_tokens=9))
    assert not {"structured_outputs", "response_format"} & set(server.bodies[-1])  # only when asked


def test_openai_refusal_and_ignored_structure_are_clear_errors(server):
    llm = _openai(server)
    p = SamplingParams(structure=Regex("[0-9]+"))
    server.status, server.reply = 400, '{"error": {"message": "Unrecognized request argument: structured_outputs"}}'
    with pytest.raises(StructureUnsupportedError, match=r"refused the structured-output request \(sent: structured_outputs"):
        llm.generate(["q"], p)
    server.reply = '{"error": {"message": "maximum context length is 512 tokens"}}'
    with pytest.raises(LLMError, match="maximum context length") as ei:  # unrelated 400: passed on as it was
        llm.generate(["q"], p)
    assert not isinstance(ei.value, StructureUnsupportedError)
    server.status, server.reply = 200, ("free text, the server ignored the field", "stop")
    with pytest.raises(StructureUnsupportedError, match="ignored the structured-output request"):
        llm.generate(["q"], p)
    server.reply = ("12", "length")  # cut by max_tokens: reported as length, not checked as complete
    c = llm.generate(["q"], p)[0]
    assert c.finish_reason == "length"


def test_openai_fields_are_json_serialisable():
    for s in (Regex("a"), Choice(["a"]), JsonSchema(SCHEMA), Grammar('root ::= "a"'),
              reason_then_answer(JsonSchema(SCHEMA))):
        json.dumps(openai_fields(s))


# --------------------------------------------------------------------------------------------- vllm
def test_vllm_structured_kwargs_new_and_old_api(monkeypatch):
    from workbench.llm.vllm_backend import VLLMBackend

    @dataclasses.dataclass
    class StructuredOutputsParams:
        json: object = None
        regex: str | None = None
        choice: list | None = None
        grammar: str | None = None
        disable_any_whitespace: bool = False

    @dataclasses.dataclass
    class GuidedDecodingParams:
        json: object = None
        regex: str | None = None
        choice: list | None = None
        grammar: str | None = None

    fake = types.SimpleNamespace(__version__="0.fake")
    self = types.SimpleNamespace(_vllm=fake)
    for cls, kw in ((StructuredOutputsParams, "structured_outputs"), (GuidedDecodingParams, "guided_decoding")):
        sp = types.ModuleType("vllm.sampling_params")
        setattr(sp, cls.__name__, cls)
        pkg = types.ModuleType("vllm")
        pkg.sampling_params = sp
        monkeypatch.setitem(sys.modules, "vllm", pkg)
        monkeypatch.setitem(sys.modules, "vllm.sampling_params", sp)
        got = VLLMBackend._structured_kwargs(self, Choice(["A", "B"]))
        assert got == {kw: cls(choice=["A", "B"])}
        got = VLLMBackend._structured_kwargs(self, JsonSchema(SCHEMA))[kw]
        assert got.json == SCHEMA
        assert getattr(got, "disable_any_whitespace", True) is True
        assert VLLMBackend._structured_kwargs(self, None) == {}
    sp = types.ModuleType("vllm.sampling_params")
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sp)
    sys.modules["vllm"].sampling_params = sp
    with pytest.raises(StructureUnsupportedError, match="upgrade vLLM"):
        VLLMBackend._structured_kwargs(self, Regex("a"))


def test_vllm_engine_is_built_for_compact_json():
    """vLLM reads disable_any_whitespace from the engine config, so the engine is built with it
    (when its constructor takes structured_outputs_config), and not passed to one that does not."""
    from workbench.llm.vllm_backend import compact_json_engine_kwargs

    class New:
        def __init__(self, model, structured_outputs_config=None, seed=0): ...

    class Old:
        def __init__(self, model, seed=0): ...

    assert compact_json_engine_kwargs(New) == {"structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True}}
    assert compact_json_engine_kwargs(Old) == {}


# ---------------------------------------------------------------------------------- embedded model
PROMPTS = ["What is 17 + 25?", "Name a fruit.", "Is water wet?", "Describe the sky in one word.",
           "Rate your confidence that Paris is in France.", "Pick a letter."]


@pytest.mark.model
def test_greedy_constrained_token_is_the_argmax_over_allowed_tokens(embedded_llm, embedded_transformers,
                                                                      one_torch_thread):
    """Independent check of the masking: the model's own logits, restricted by hand to the tokens that
    are a single digit, give the greedy constrained answer."""
    import torch

    llm = embedded_llm
    out = llm.generate(PROMPTS[:3], SamplingParams(temperature=0, max_tokens=4, structure=Regex("[0-9]")))
    digit_ids = [i for i in range(len(llm.tokenizer)) if re.fullmatch("[0-9]", llm.tokenizer.decode([i]))]
    for prompt, c in zip(PROMPTS[:3], out):
        with torch.inference_mode():
            logits = embedded_transformers.lm(input_ids=torch.tensor([llm.render(prompt)])).logits[0, -1]
        best = max(digit_ids, key=lambda i: float(logits[i]))
        assert c.text == llm.tokenizer.decode([best])
        assert c.finish_reason == "stop" and c.completion_tokens == 2  # the digit + the certain EOS


@pytest.mark.model
def test_stop_strings_with_a_structure(embedded_llm, one_torch_thread):
    s = Regex(r"[a-z]{1,8}(, [a-z]{1,8}){3}")
    out = embedded_llm.generate(PROMPTS[:4], SamplingParams(temperature=1.0, max_tokens=40, structure=s, stop=(",",)),
                                seeds=range(4))
    for c in out:
        assert "," not in c.text and c.finish_reason == "stop"
        assert re.fullmatch("[a-z]{1,8}", c.text)  # the prefix of a valid string up to the stop string
    s2 = Choice(["alpha beta", "gamma delta"])
    out = embedded_llm.generate(PROMPTS[:4], SamplingParams(temperature=1.0, max_tokens=8, structure=s2, stop=(" ",)),
                                seeds=range(4))
    assert {c.text for c in out} <= {"alpha", "gamma"} and all(c.finish_reason == "stop" for c in out)


@pytest.mark.model
def test_compiled_once_and_reused(embedded_llm, one_torch_thread):
    s = Choice(["left", "right"])
    p = SamplingParams(temperature=1.0, max_tokens=4, structure=s)
    embedded_llm.generate(PROMPTS[:2], p, seeds=[1, 2])
    compiled = embedded_llm._compiled_structures[s]
    embedded_llm.generate(PROMPTS[2:4], p.replace(structure=Choice(["left", "right"])), seeds=[3, 4])
    assert embedded_llm._compiled_structures[s] is compiled


# ------------------------------------------------------------------------------- conformance (slow)
CONFORMANCE = {
    "regex": (Regex(r"(yes|no), [0-9]{1,3}"), 16),
    "choice": (Choice(["A", "B", "C", "none of them"]), 8),
    "json": (JsonSchema(SCHEMA), 64),
    "grammar": (Grammar('root ::= item ("," item){0,3}\nitem ::= [a-z]{1,8}'), 48),
    "reason_then_answer": (reason_then_answer(Regex("[0-9]{1,3}"), max_reasoning_chars=150), 170),
}
"""structure and a max_tokens that covers its longest string (every token holds at least one character)"""


@pytest.mark.slow
@pytest.mark.model
def test_conformance_200_prompts_every_kind_valid(embedded_llm, one_torch_thread):
    topics = ["a cat", "the sea", "prime numbers", "a red car", "Paris", "music", "rain", "a chess move",
              "gravity", "bread", "the moon", "a river", "winter", "a robot", "a violin", "green tea",
              "an owl", "the number seven", "a bridge", "a forest"]
    prompts = [f"Question {i}: tell me about {topics[i % len(topics)]}; answer briefly." for i in range(200)]
    report = {}
    for kind, (s, max_tokens) in CONFORMANCE.items():
        out = embedded_llm.generate(prompts, SamplingParams(temperature=1.0, max_tokens=max_tokens, structure=s),
                                    seeds=range(200))
        valid = sum(c.finish_reason == "stop" and s.matches(c.text) for c in out)
        report[kind] = valid
        print(f"conformance {kind}: {valid}/200 valid, {sum(c.completion_tokens for c in out)} tokens")
    assert report == {k: 200 for k in CONFORMANCE}
