import json
import multiprocessing as mp
import sys

import pytest

from workbench.llm import (BackendOptionError, Completion, MalformedResponseError, MissingExtraError,
                           ModelNotFoundError, ResponseCache, SamplingParams, ServerUnreachableError,
                           UnknownBackendError, load_llm, parse_spec)
from workbench.llm.base import LLMError

from .fake_openai import FakeServer


# ------------------------------------------------------------------------------ specs and errors
def test_parse_spec_forms():
    assert parse_spec("transformers:/x/y?dtype=float32&max_batch_size=4") == (
        "transformers", "/x/y", {"dtype": "float32", "max_batch_size": "4"})
    assert parse_spec("default?dtype=bfloat16") == ("default", "", {"dtype": "bfloat16"})
    name, model, opts = parse_spec("openai:http://127.0.0.1:9/v1#m?timeout=2&retries=0")
    assert (name, model, opts) == ("openai", "http://127.0.0.1:9/v1#m", {"timeout": "2", "retries": "0"})


@pytest.mark.parametrize("spec", ["nonsense:x", "gpt4", "", "Transformer:x"])
def test_unknown_backend(spec):
    with pytest.raises(UnknownBackendError, match="valid backends|empty"):
        load_llm(spec)


@pytest.mark.parametrize("spec,match", [
    ("scripted?latency=fast", "must be float"),
    ("scripted?bogus=1", "unknown option"),
    ("scripted?latency=1&latency=2", "given twice"),
    ("transformers:", "names no model"),
    ("onnx:", "names no model"),
    ("openai:http://x", "openai:<base url>#<model>"),
    ("scripted?=&", "malformed"),
])
def test_bad_options(spec, match):
    with pytest.raises(BackendOptionError, match=match):
        load_llm(spec)


def test_sampling_params_validation():
    with pytest.raises(ValueError):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError):
        SamplingParams(max_tokens=0)
    assert SamplingParams(stop="x").stop == ("x",)


def test_model_not_found_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError):
        load_llm("transformers:/definitely/not/a/model/dir")
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        load_llm("transformers:nobody-here/no-such-model-xyz")


def test_missing_extra_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(MissingExtraError, match=r"workbench\[vllm\]"):
        load_llm("vllm:some/model")


def test_generate_rejects_bare_string():
    llm = load_llm("scripted", responses=["x"], cache="off")
    with pytest.raises(TypeError):
        llm.generate("not a list")


# ------------------------------------------------------------------------------ openai backend
def test_openai_backend_roundtrip_and_seeds():
    with FakeServer() as srv:
        llm = load_llm(f"openai:{srv.url}#fake", cache="off")
        out = llm.generate(["hi there", "bye"], SamplingParams(temperature=0.5, max_tokens=4, n=2, seed=7))
        assert [(c.index, c.sample) for c in out] == [(0, 0), (0, 1), (1, 0), (1, 1)]
        assert out[0].text.startswith("echo hi there")
        by_prompt = {}
        for _, b in srv.requests:  # requests run concurrently: group the seeds by prompt
            by_prompt.setdefault(b["messages"][-1]["content"], set()).add(b["seed"])
        # each draw j its own seed; params.seed is shared by the prompts (as in vLLM)
        assert by_prompt["hi there"] == by_prompt["bye"] and len(by_prompt["bye"]) == 2
        assert all(p == "/v1/chat/completions" for p, _ in srv.requests)
        assert llm.usage.completion_tokens == sum(c.completion_tokens for c in out)
        raw = load_llm(f"openai:{srv.url}#fake?chat=false", cache="off")
        raw.generate(["x"], SamplingParams(max_tokens=3))
        assert srv.requests[-1][0] == "/v1/completions"


def test_openai_retries_then_succeeds():
    with FakeServer(fail_first=2) as srv:
        llm = load_llm(f"openai:{srv.url}#fake?retries=3&backoff=0.01", cache="off")
        assert llm.generate(["a"], SamplingParams(max_tokens=3))[0].text.startswith("echo")
        assert len(srv.requests) == 3


def test_openai_unreachable_and_malformed():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    llm = load_llm(f"openai:http://127.0.0.1:{port}/v1#m?retries=1&backoff=0.01&timeout=2", cache="off")
    with pytest.raises(ServerUnreachableError, match="2 attempts"):
        llm.generate(["a"])
    with FakeServer(mode="malformed") as srv:
        with pytest.raises(MalformedResponseError):
            load_llm(f"openai:{srv.url}#m", cache="off").generate(["a"])
    with FakeServer(mode="badrequest") as srv:
        with pytest.raises(LLMError, match="HTTP 400"):
            load_llm(f"openai:{srv.url}#m?retries=3", cache="off").generate(["a"])
        assert len(srv.requests) == 1  # 4xx is not retried


# ------------------------------------------------------------------------------ cache
def _counting(tmp_path, mode="readwrite"):
    calls = []

    def respond(prompt, req):
        calls.append(prompt)
        return f"r{len(calls)}"

    return load_llm("scripted", responses=respond, cache=mode, cache_dir=str(tmp_path)), calls


def test_cache_hits_and_keys(tmp_path):
    llm, calls = _counting(tmp_path)
    p = SamplingParams(temperature=1.0, max_tokens=5)
    a = llm.generate(["q1", "q2"], p, seeds=[1, 2])
    b = llm.generate(["q1", "q2"], p, seeds=[1, 2])
    assert [c.text for c in a] == [c.text for c in b] and len(calls) == 2
    assert all(c.cached for c in b) and llm.usage.cache_hits == 2
    llm.generate(["q1"], p, seeds=[3])  # another seed -> a miss
    llm.generate(["q1"], p.replace(max_tokens=6), seeds=[1])  # other params -> a miss
    assert len(calls) == 4
    llm.generate(["q1", "q1"], p)  # unseeded sampling is never cached
    llm.generate(["q1", "q1"], p)
    assert len(calls) == 8
    llm.generate(["g"], p.replace(temperature=0))
    llm.generate(["g"], p.replace(temperature=0))  # greedy is cached without a seed
    assert len(calls) == 9


def test_cache_read_mode_does_not_write(tmp_path):
    llm, calls = _counting(tmp_path, mode="read")
    llm.generate(["q"], SamplingParams(), seeds=[1])
    llm.generate(["q"], SamplingParams(), seeds=[1])
    assert len(calls) == 2 and not list(tmp_path.rglob("*.json"))


def test_corrupt_entry_ignored_and_rewritten(tmp_path):
    llm, calls = _counting(tmp_path)
    llm.generate(["q"], SamplingParams(), seeds=[1])
    (f,) = list(tmp_path.rglob("*.json"))
    f.write_text("{not json")
    out = llm.generate(["q"], SamplingParams(), seeds=[1])
    assert len(calls) == 2 and out[0].text == "r2" and llm.cache.corrupt == 1
    assert json.loads(f.read_text())["completion"]["text"] == "r2"


def _writer(args):
    d, k = args
    c = ResponseCache(d)
    for i in range(50):
        c.put(f"{i:064x}", Completion(text=f"v{i}-{'x' * 5000}", prompt_tokens=1, completion_tokens=1,
                                      finish_reason="stop", latency_s=0.0))
    return k


def test_concurrent_writers_do_not_corrupt(tmp_path):
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_writer, [(str(tmp_path), k) for k in range(4)])
    c = ResponseCache(tmp_path)
    for i in range(50):
        got = c.get(f"{i:064x}")
        assert got is not None and got.text.startswith(f"v{i}-")
    assert c.corrupt == 0 and not list(tmp_path.rglob(".tmp-*"))


# ------------------------------------------------------------------------------ transformers details
@pytest.mark.model
@pytest.mark.parametrize("engine", ["onnx", "transformers"])
def test_greedy_matches_transformers_generate(engine, embedded_onnx, embedded_transformers):
    """Both engines' greedy text equals ``model.generate`` of the PyTorch model (an independent loop)."""
    import torch

    llm = embedded_onnx if engine == "onnx" else embedded_transformers
    prompts = ["What is 2+2?", "List three animals."]
    ours = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=10))
    for p, c in zip(prompts, ours):
        ids = torch.tensor([llm.render(p)])
        ref = embedded_transformers.lm.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10,
                                                do_sample=False)
        text = llm.tokenizer.decode(ref[0, ids.shape[1]:], skip_special_tokens=True)
        assert c.text == text


@pytest.mark.model
@pytest.mark.parametrize("engine", ["onnx", "transformers"])
def test_logprobs_are_model_logprobs(engine, embedded_onnx, embedded_transformers):
    import torch

    llm = embedded_onnx if engine == "onnx" else embedded_transformers
    c = llm.generate(["Say hi."], SamplingParams(temperature=0, max_tokens=5, logprobs=True))[0]
    assert len(c.logprobs) == len(c.tokens) >= 1
    ids = llm.render("Say hi.")
    new = llm.tokenizer(c.text, add_special_tokens=False)["input_ids"][: len(c.logprobs)]
    with torch.no_grad():
        logits = embedded_transformers.lm(torch.tensor([ids + new])).logits[0].float()
    ref = torch.log_softmax(logits[len(ids) - 1: len(ids) - 1 + len(new)], -1)
    ref_lp = [float(ref[k, t]) for k, t in enumerate(new)]
    assert c.logprobs[: len(ref_lp)] == pytest.approx(ref_lp, abs=1e-3)
    assert all(lp <= 0 for lp in c.logprobs)
