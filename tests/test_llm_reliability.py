"""Reliability of the LLM layer: cache keys follow the model's content, corrupt cache files and failed
writes never crash or lose completions, option ranges, and the openai backend against hostile servers.

The hostile-server table is also the probe: each row is one server behaviour, and the test states the
outcome the caller must see (a text, or one of the LLM layer's own errors naming what was wrong).
"""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from workbench.llm import (BackendOptionError, MalformedResponseError, ResponseCache, SamplingParams,
                           ServerUnreachableError, load_llm)
from workbench.llm.base import LLMError

from .fake_openai import FakeServer


@pytest.fixture(autouse=True)
def _cache_mode_from_the_test(monkeypatch):
    """These tests exercise the response cache itself: `make test` turns the cache off for the rest of
    the suite (WORKBENCH_LLM_CACHE=off), which must not reach them."""
    monkeypatch.delenv("WORKBENCH_LLM_CACHE", raising=False)


# ================================================================================ model identity
def _tiny_model(path, seed):
    """A random 1-layer Llama with a word-level tokenizer, saved to ``path`` (what training writes)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>"] + [f"w{i}" for i in range(28)]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                  unk_token="<unk>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)


def _greedy(spec, cache_dir, cache="readwrite"):
    llm = load_llm(spec, cache=cache, cache_dir=str(cache_dir))
    p = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
    return [c.text for c in llm.generate(["w1 w2 w3", "w4 w5"], p)], llm


def test_cache_follows_model_content_not_path(tmp_path, one_torch_thread):
    """A different model saved into the same folder (as training into checkpoints/rsa_agg does) must not
    be answered from the first model's cached completions."""
    model, cache = tmp_path / "ckpt", tmp_path / "cache"
    spec = f"transformers:{model}?chat=false&device=cpu"
    _tiny_model(model, seed=0)
    first, _ = _greedy(spec, cache)
    _tiny_model(model, seed=1)  # overwrite in place
    truth, _ = _greedy(spec, cache, cache="off")
    assert truth != first  # the two models really answer differently
    again, llm = _greedy(spec, cache)
    assert again == truth
    assert llm.identity and llm.identity.startswith("dir-sha256:")
    _, llm2 = _greedy(spec, cache)  # the same model again: served from the cache
    assert llm2.cache.hits == 2 and llm2.identity == llm.identity


def test_dir_identity_changes_with_any_file_and_not_with_path(tmp_path, monkeypatch):
    from workbench.llm import backend

    a = tmp_path / "a"
    a.mkdir()
    (a / "config.json").write_text("{}")
    (a / "tokenizer.json").write_text('{"v": 1}')
    (a / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"t":{}}        ' + b"\x01" * 4096)
    base = backend.dir_identity(a)
    b = tmp_path / "copy"
    b.mkdir()
    for f in a.iterdir():
        (b / f.name).write_bytes(f.read_bytes())
    assert backend.dir_identity(b) == base  # content, not location
    (a / ".hidden").write_text("x")  # hidden files are not read by loaders
    assert backend.dir_identity(a) == base
    seen = {base}
    for name, data in [("tokenizer.json", '{"v": 2}'), ("config.json", '{"x": 1}')]:
        (a / name).write_text(data)
        seen.add(backend.dir_identity(a))
    # sampled digests (a folder over the full-hash budget): a one-byte change in the weights still shows
    monkeypatch.setattr(backend, "FULL_HASH_MAX_BYTES", 0)
    monkeypatch.setattr(backend, "SAMPLE_FILE_BYTES", 0)
    seen.add(backend.dir_identity(a))
    w = bytearray((a / "model.safetensors").read_bytes())
    w[3000] ^= 1
    (a / "model.safetensors").write_bytes(bytes(w))
    # (with SAMPLE_FILE_BYTES=0 this small file is memoized, and a rewrite within one timestamp tick
    # would look unchanged: real weights take far longer than a tick to rewrite; forget the memo here)
    monkeypatch.setattr(backend, "_digest_memo", {})
    seen.add(backend.dir_identity(a))
    assert len(seen) == 5


def test_identity_attribute_per_backend(tmp_path):
    from workbench.llm import embedded

    with FakeServer(models=[{"id": "m", "root": "/models/a", "created": 1}]) as srv:
        ids = []  # the server restarted with other weights under the same name, then just restarted
        for root, created in [("/models/a", 1), ("/models/b", 2), ("/models/b", 3)]:
            srv.models = [{"id": "m", "root": root, "created": created}]  # created: a timestamp (vLLM)
            ids.append(load_llm(f"openai:{srv.url}#m", cache="off").identity)
        assert ids[0] != ids[1] and ids[1] == ids[2]
        assert load_llm(f"openai:{srv.url}#other", cache="off").identity != ids[1]
        assert srv.gets and all(g.endswith("/models") for g in srv.gets)
    assert "gguf-sha256:" + embedded.GGUF_SHA256 in embedded.embedded_identity()


def test_scripted_script_is_in_the_cache_key(tmp_path):
    p = SamplingParams(temperature=0)
    assert load_llm("scripted", responses=["old"], cache_dir=str(tmp_path)).generate(["q"], p)[0].text == "old"
    assert load_llm("scripted", responses=["new"], cache_dir=str(tmp_path)).generate(["q"], p)[0].text == "new"
    assert load_llm("scripted", responses={"q": "d1"}, cache_dir=str(tmp_path)).generate(["q"], p)[0].text == "d1"
    assert load_llm("scripted", responses={"q": "d2"}, cache_dir=str(tmp_path)).generate(["q"], p)[0].text == "d2"

    def make(answer):
        return lambda prompt, req: answer

    for answer in ("c1", "c2"):  # same code, different closed-over value
        llm = load_llm("scripted", responses=make(answer), cache_dir=str(tmp_path))
        assert llm.generate(["q"], p)[0].text == answer
    again = load_llm("scripted", responses=make("c2"), cache_dir=str(tmp_path))
    assert again.generate(["q"], p)[0].cached  # an equal script still hits


def test_cache_key_holds_a_format_version(monkeypatch):
    from workbench.llm import cache as cache_mod

    k = ResponseCache.key({"a": 1})
    monkeypatch.setattr(cache_mod, "CACHE_FORMAT", cache_mod.CACHE_FORMAT + 1)
    assert ResponseCache.key({"a": 1}) != k


# ================================================================================ corrupt cache files
def _entry(key, **over):
    c = {"text": "old", "prompt_tokens": 1, "completion_tokens": 1, "finish_reason": "stop", "latency_s": 0.0}
    c.update(over)
    return json.dumps({"key": key, "completion": c})


CORRUPT = {
    "invalid_json": lambda k: "{not json",
    "truncated": lambda k: _entry(k)[:40],
    "binary": lambda k: b"\x00\xff\xfe\x80garbage",
    "empty": lambda k: "",
    "list": lambda k: "[]",
    "null": lambda k: "null",
    "number": lambda k: "1",
    "string": lambda k: '"text"',
    "empty_object": lambda k: "{}",
    "no_completion": lambda k: json.dumps({"key": k}),
    "key_mismatch": lambda k: _entry("0" * 64),
    "completion_list": lambda k: json.dumps({"key": k, "completion": []}),
    "completion_null": lambda k: json.dumps({"key": k, "completion": None}),
    "completion_string": lambda k: json.dumps({"key": k, "completion": "old"}),
    "missing_fields": lambda k: json.dumps({"key": k, "completion": {"text": "old"}}),
    "text_number": lambda k: _entry(k, text=123),
    "tokens_string": lambda k: _entry(k, prompt_tokens="5"),
    "tokens_negative": lambda k: _entry(k, completion_tokens=-1),
    "tokens_bool": lambda k: _entry(k, prompt_tokens=True),
    "finish_reason_bad": lambda k: _entry(k, finish_reason=7),
    "latency_nan": lambda k: _entry(k, latency_s=float("nan")),
    "logprobs_string": lambda k: _entry(k, logprobs="abc"),
    "tokens_list_numbers": lambda k: _entry(k, tokens=[1, 2]),
    "meta_list": lambda k: _entry(k, meta=[]),
    "deep_nesting": lambda k: "[" * 100_000 + "]" * 100_000,
    "directory": None,
    "symlink_loop": None,
    "unreadable": None,
}


def _one_entry(tmp_path):
    calls = []

    def respond(prompt, req):
        calls.append(prompt)
        return f"r{len(calls)}"

    llm = load_llm("scripted", responses=respond, cache_dir=str(tmp_path))
    llm.generate(["q"], SamplingParams(), seeds=[1])
    (f,) = list(tmp_path.rglob("*.json"))
    return llm, calls, f


@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_cache_file_is_a_miss_and_rewritten(tmp_path, case):
    llm, calls, f = _one_entry(tmp_path)
    key = f.stem
    f.unlink()
    if case == "directory":
        f.mkdir()
    elif case == "symlink_loop":
        f.symlink_to(f.name)
    elif case == "unreadable":
        f.write_text(_entry(key))
        f.chmod(0)
        if os.access(f, os.R_OK):  # root reads anything: make it unreadable another way
            f.unlink()
            f.mkdir()
            (f / "x").write_text("x")  # a non-empty folder cannot be replaced: the write fails too
    else:
        data = CORRUPT[case](key)
        (f.write_bytes if isinstance(data, bytes) else f.write_text)(data)
    with pytest.warns(RuntimeWarning) if case == "unreadable" and f.is_dir() else _no_warning():
        out = llm.generate(["q"], SamplingParams(), seeds=[1])
    assert [c.text for c in out] == ["r2"] and not out[0].cached and len(calls) == 2
    assert llm.cache.corrupt == 1 and llm.usage.completion_tokens == 2
    if not f.is_dir():  # rewritten with the fresh completion; the next call hits
        assert llm.generate(["q"], SamplingParams(), seeds=[1])[0].text == "r2" and len(calls) == 2


class _no_warning:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def test_unwritable_cache_keeps_completions_and_warns_once(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    llm = load_llm("scripted", responses=["a", "b", "c"], cache_dir=str(blocker / "llm"))
    with pytest.warns(RuntimeWarning, match="cannot be written") as rec:
        out = llm.generate(["x", "y"], SamplingParams(), seeds=[1, 2])
        out2 = llm.generate(["z"], SamplingParams(), seeds=[3])
    assert [c.text for c in out + out2] == ["a", "b", "c"]
    assert len([w for w in rec if "cannot be written" in str(w.message)]) == 1
    assert llm.cache.write_errors == 3


def test_full_disk_during_write_keeps_completions(tmp_path, monkeypatch):
    import errno

    llm = load_llm("scripted", responses=["a"], cache_dir=str(tmp_path))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.warns(RuntimeWarning, match="No space left"):
        assert llm.generate(["x"], SamplingParams(temperature=0))[0].text == "a"
    assert not list(tmp_path.rglob(".tmp-*"))  # the half-done write is cleaned up


_KILLED_WRITER = """
import os, sys
from workbench.llm import Completion, ResponseCache
os.replace = lambda *a: os._exit(9)  # die between writing the temporary file and renaming it
ResponseCache(sys.argv[1]).put("ab" + "0" * 62, Completion("t", 1, 1, "stop", 0.0))
"""


def test_killed_writer_temp_files_are_cleaned(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    r = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], env=env, capture_output=True)
    assert r.returncode == 9, r.stderr.decode()
    (left,) = list(tmp_path.rglob(".tmp-*"))  # what a killed writer leaves
    young = left.parent / ".tmp-live-writer"
    young.write_text("{")
    old = time.time() - 3600
    os.utime(left, (old, old))
    c = ResponseCache(tmp_path)
    assert not left.exists() and young.exists()  # stale leftovers go; a live writer's file stays
    assert c.stale_tmp_removed == 1
    ResponseCache(tmp_path, stale_tmp_seconds=0)
    assert not list(tmp_path.rglob(".tmp-*"))


# ================================================================================ option ranges
@pytest.mark.parametrize("spec,match", [
    ("openai:http://127.0.0.1:9/v1#m?retries=-1", "retries.*>= 0"),
    ("openai:http://127.0.0.1:9/v1#m?timeout=0", "timeout.*> 0"),
    ("openai:http://127.0.0.1:9/v1#m?timeout=-5", "timeout.*> 0"),
    ("openai:http://127.0.0.1:9/v1#m?timeout=nan", "finite"),
    ("openai:http://127.0.0.1:9/v1#m?timeout=inf", "finite"),
    ("openai:http://127.0.0.1:9/v1#m?max_concurrency=0", "max_concurrency.*>= 1"),
    ("openai:http://127.0.0.1:9/v1#m?backoff=-1", "backoff.*>= 0"),
    ("scripted?latency=-1", "latency.*>= 0"),
    ("transformers:/no/such/dir?max_batch_size=0", "max_batch_size.*>= 1"),
    ("transformers:/no/such/dir?threads=-2", "threads.*>= 0"),
    ("default:some/other-model", "takes no model"),
    ("default:x?dtype=float32", "transformers:x"),
    ("scripted:foo", "takes no model"),
])
def test_option_ranges_and_specs(spec, match):
    with pytest.raises(BackendOptionError, match=match):
        load_llm(spec, cache="off")


def test_keyword_options_are_range_checked_and_bool_is_not_int():
    with pytest.raises(BackendOptionError, match="retries"):
        load_llm("openai:http://127.0.0.1:9/v1#m", cache="off", retries=-1)
    with pytest.raises(BackendOptionError, match="must be int"):
        load_llm("openai:http://127.0.0.1:9/v1#m", cache="off", retries=True)


@pytest.mark.parametrize("opts", [{"tensor_parallel_size": "0"}, {"gpu_memory_utilization": "1.5"},
                                  {"gpu_memory_utilization": "0"}, {"max_model_len": "0"}, {"seed": "-1"}])
def test_vllm_option_ranges_checked_without_vllm(opts):
    from workbench.llm.vllm_backend import VLLMBackend

    with pytest.raises(BackendOptionError, match=next(iter(opts))):
        VLLMBackend.validate_options(opts)
    assert VLLMBackend.validate_options({"gpu_memory_utilization": "0.9"})["gpu_memory_utilization"] == 0.9


# ================================================================================ hostile servers
def _send(h, status=200, body=b"", ctype="application/json", length=None):
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body) if length is None else length))
    h.end_headers()
    h.wfile.write(body)


def _json(payload):
    return lambda h, path, body: _send(h, body=json.dumps(payload).encode())


def _chat(choice=None, usage=None, **top):
    ch = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ch.update(choice or {})
    out = {"choices": [ch], "usage": usage if usage is not None else {"prompt_tokens": 2, "completion_tokens": 1}}
    out.update(top)
    return out


def _status(code, body=b"x", **kw):
    return lambda h, path, body_: _send(h, code, body, **kw)


def _fail_then_ok(code):
    state = {"n": 0}

    def f(h, path, body):
        state["n"] += 1
        if state["n"] == 1:
            _send(h, code, b"busy")
        else:
            _send(h, body=json.dumps(_chat()).encode())
    return f


def _drip(headers_too):
    def f(h, path, body):
        data = json.dumps(_chat()).encode()
        if headers_too:
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                    ).encode()
            data, h.close_connection = head + data, True
        else:
            h.send_response(200)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.flush()
        for i in range(len(data)):
            h.wfile.write(data[i:i + 1])
            h.wfile.flush()
            time.sleep(0.05)
    return f


def _reset(h, path, body):
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    h.connection.close()
    h.close_connection = True


def _hang(h, path, body):
    time.sleep(3)


def _short_body(h, path, body):
    _send(h, body=b'{"choices": [', length=1000)
    h.close_connection = True


LP = {"logprobs": True}
HOSTILE = [
    # name, server, spec options, sampling extras, expected: str (text) | (error class, match)
    ("ok", _json(_chat()), "", {}, "hi"),
    ("no_usage", _json({"choices": [{"message": {"content": "hi"}}]}), "", {}, "hi"),
    ("content_null", _json(_chat({"message": {"content": None}})), "", {}, ""),
    ("logprobs_ok", _json(_chat({"logprobs": {"content": [{"token": "hi", "logprob": -0.5}]}})), "", LP, "hi"),
    ("500_then_ok", _fail_then_ok(500), "&retries=2", {}, "hi"),
    ("429_then_ok", _fail_then_ok(429), "&retries=2", {}, "hi"),
    ("408_then_ok", _fail_then_ok(408), "&retries=2", {}, "hi"),
    ("503_always", _status(503), "&retries=1", {}, (ServerUnreachableError, "HTTP 503")),
    ("400", _status(400, b'{"error": "bad"}'), "", {}, (LLMError, "HTTP 400")),
    ("401", _status(401), "", {}, (LLMError, "HTTP 401")),
    ("404", _status(404), "", {}, (LLMError, "HTTP 404")),
    ("301", _status(301), "", {}, (LLMError, "HTTP 301")),
    ("204", _status(204, b""), "", {}, (LLMError, "HTTP 204")),
    ("html_200", _status(200, b"<html><body>Gateway</body></html>", ctype="text/html"), "", {},
     (MalformedResponseError, "non-JSON")),
    ("empty_200", _status(200, b""), "", {}, (MalformedResponseError, "non-JSON")),
    ("invalid_utf8", _status(200, b'{"choices": "\xff\xfe"}'), "", {}, (MalformedResponseError, None)),
    ("json_list", _json([]), "", {}, (MalformedResponseError, "object")),
    ("json_null", _json(None), "", {}, (MalformedResponseError, "object")),
    ("json_number", _json(1), "", {}, (MalformedResponseError, "object")),
    ("error_object", _json({"error": {"message": "model overloaded"}}), "", {},
     (MalformedResponseError, "model overloaded")),
    ("missing_choices", _json({}), "", {}, (MalformedResponseError, "choices")),
    ("choices_empty", _json({"choices": []}), "", {}, (MalformedResponseError, "choices")),
    ("choices_string", _json({"choices": "hi"}), "", {}, (MalformedResponseError, "choices")),
    ("choice_null", _json({"choices": [None]}), "", {}, (MalformedResponseError, r"choices\[0\]")),
    ("extra_choices", _json({"choices": [_chat()["choices"][0]] * 2}), "", {}, (MalformedResponseError, "2 choices")),
    ("wrong_index", _json(_chat({"index": 3})), "", {}, (MalformedResponseError, "index")),
    ("message_missing", _json({"choices": [{"finish_reason": "stop"}]}), "", {}, (MalformedResponseError, "message")),
    ("message_null", _json(_chat({"message": None})), "", {}, (MalformedResponseError, "message")),
    ("content_number", _json(_chat({"message": {"content": 42}})), "", {}, (MalformedResponseError, "content")),
    ("content_number_stop", _json(_chat({"message": {"content": 42}})), "", {"stop": ["x"]},
     (MalformedResponseError, "content")),
    ("content_dict", _json(_chat({"message": {"content": {"a": 1}}})), "", {}, (MalformedResponseError, "content")),
    ("content_list", _json(_chat({"message": {"content": ["hi"]}})), "", {}, (MalformedResponseError, "content")),
    ("text_number", _json({"choices": [{"text": 7, "finish_reason": "stop"}]}), "&chat=false", {},
     (MalformedResponseError, "text")),
    ("usage_string", _json(_chat(usage="lots")), "", {}, (MalformedResponseError, "usage")),
    ("usage_list", _json(_chat(usage=[1, 2])), "", {}, (MalformedResponseError, "usage")),
    ("usage_tokens_string", _json(_chat(usage={"prompt_tokens": "abc"})), "", {},
     (MalformedResponseError, "prompt_tokens")),
    ("usage_negative", _json(_chat(usage={"prompt_tokens": 2, "completion_tokens": -3})), "", {},
     (MalformedResponseError, "completion_tokens")),
    ("usage_fraction", _json(_chat(usage={"prompt_tokens": 2.5})), "", {}, (MalformedResponseError, "prompt_tokens")),
    ("usage_bool", _json(_chat(usage={"completion_tokens": True})), "", {}, (MalformedResponseError, "completion_tokens")),
    ("usage_nan", _status(200, b'{"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": NaN}}'),
     "", {}, (MalformedResponseError, "prompt_tokens")),
    ("logprobs_string", _json(_chat({"logprobs": "many"})), "", LP, (MalformedResponseError, "logprobs")),
    ("logprobs_content_dict", _json(_chat({"logprobs": {"content": {"a": 1}}})), "", LP,
     (MalformedResponseError, "logprobs")),
    ("logprob_missing", _json(_chat({"logprobs": {"content": [{"token": "hi"}]}})), "", LP,
     (MalformedResponseError, "logprob")),
    ("logprob_positive", _json(_chat({"logprobs": {"content": [{"logprob": 3.0}]}})), "", LP,
     (MalformedResponseError, "logprob")),
    ("logprob_string", _json(_chat({"logprobs": {"content": [{"logprob": "low"}]}})), "", LP,
     (MalformedResponseError, "logprob")),
    ("token_logprobs_string", _json({"choices": [{"text": "hi", "logprobs": {"token_logprobs": "x"}}]}),
     "&chat=false", LP, (MalformedResponseError, "token_logprobs")),
    ("finish_reason_number", _json(_chat({"finish_reason": 5})), "", {}, (MalformedResponseError, "finish_reason")),
    ("deep_nesting", _status(200, b"[" * 100_000 + b"]" * 100_000), "", {}, (MalformedResponseError, None)),
    ("huge_body", _json(_chat({"message": {"content": "x" * 3_000_000}})), "&max_response_bytes=1000000", {},
     (MalformedResponseError, "1000000 bytes")),
    ("connection_reset", _reset, "&retries=1", {}, (ServerUnreachableError, "2 attempts")),
    ("short_body", _short_body, "&retries=1", {}, (ServerUnreachableError, "2 attempts")),
    ("hang", _hang, "&timeout=0.5", {}, (ServerUnreachableError, None)),
    ("drip_body", _drip(False), "&timeout=0.5", {}, (ServerUnreachableError, "deadline")),
    ("drip_headers", _drip(True), "&timeout=0.5", {}, (ServerUnreachableError, "deadline")),
]


@pytest.fixture(scope="module")
def hostile():
    """One loopback server for every row (starting and stopping one costs ~0.5 s); rows set ``raw``."""
    with FakeServer(raw=_status(500)) as srv:
        yield srv


@pytest.mark.parametrize("name,server,opts,extra,expected", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_openai_hostile_server(hostile, name, server, opts, extra, expected):
    chat = "chat=false" not in opts
    hostile.raw = server
    srv = hostile
    o = {"retries": "0", "backoff": "0.01", **dict(kv.split("=") for kv in opts.split("&") if kv)}
    llm = load_llm(f"openai:{srv.url}#m?" + "&".join(f"{k}={v}" for k, v in o.items()), cache="off")
    params = SamplingParams(max_tokens=4, **extra)
    if isinstance(expected, str):
        (c,) = llm.generate(["hello"], params)
        assert c.text == expected and isinstance(c.text, str)
        assert isinstance(c.prompt_tokens, int) and isinstance(c.completion_tokens, int)
    else:
        err, match = expected
        with pytest.raises(err, match=match):
            llm.generate(["hello"] if chat else ["plain"], params)
    llm.close()
