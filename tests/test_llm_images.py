"""Image parts in prompts: encoding, the openai wire format, cache keys, the vllm chat path (fake engine),
the text-only error, the scripted backend keeping the parts."""
import base64
import io
import types

import numpy as np
import pytest
from PIL import Image

from workbench.llm import (ImageInputError, SamplingParams, decode_image_part, has_image, image_part, load_llm,
                           prompt_images, prompt_text, text_part)
from workbench.llm.backend import Request
from workbench.llm.base import as_chat, image_digests, text_only_chat

from .fake_openai import FakeServer


def _img(seed, shape=(6, 5, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _chat(text, *imgs):
    return [{"role": "user", "content": [*(image_part(i) for i in imgs), text_part(text)]}]


# ------------------------------------------------------------------------------ the part itself
def test_image_part_round_trips_pixels_and_is_png():
    a = _img(0)
    p = image_part(a)
    assert p["type"] == "image_url" and p["image_url"]["url"].startswith("data:image/png;base64,")
    raw = base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
    # decoded independently with Pillow: a PNG with exactly the pixels we passed
    im = Image.open(io.BytesIO(raw))
    assert im.format == "PNG" and im.size == (5, 6)
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), a)
    np.testing.assert_array_equal(decode_image_part(p), a)
    assert image_part(a) == p  # deterministic: same pixels, same URL
    assert image_part(raw) == p  # PNG bytes pass through unchanged
    b = a.copy()
    b[0, 0, 0] ^= 1  # one bit of one pixel
    assert image_part(b) != p


@pytest.mark.parametrize("bad,match", [
    (np.zeros((4, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((4, 4, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((4, 4, 3), np.float32), "uint8"),
    (b"GIF89a...", "PNG signature"),
])
def test_image_part_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        image_part(bad)


def test_part_shapes_checked():
    with pytest.raises(TypeError, match="unknown content part type"):
        as_chat([{"role": "user", "content": [{"type": "audio", "audio": "x"}]}])
    with pytest.raises(TypeError, match="image_url"):
        as_chat([{"role": "user", "content": [{"type": "image_url", "image_url": "not a dict"}]}])
    with pytest.raises(TypeError, match="string or a list of parts"):
        as_chat([{"role": "user", "content": 3}])
    llm = load_llm("scripted", responses=["x"], cache="off")
    with pytest.raises(TypeError, match="unknown content part type"):
        llm.generate([[{"role": "user", "content": [{"type": "video"}]}]])


def test_prompt_helpers():
    a, b = _img(1), _img(2)
    chat = _chat("look", a, b)
    assert has_image(chat) and not has_image("text") and not has_image([{"role": "user", "content": "t"}])
    assert prompt_images(chat) == [image_part(a), image_part(b)]
    assert prompt_text(chat) == "look"
    assert text_only_chat([{"role": "user", "content": [text_part("a"), text_part("b")]}]) == [
        {"role": "user", "content": "a\nb"}]
    with pytest.raises(ImageInputError):
        text_only_chat(chat)


# ------------------------------------------------------------------------------ backends
def test_openai_sends_image_parts_intact():
    a = _img(3)
    chat = _chat("what is in view?", a)
    with FakeServer() as srv:
        llm = load_llm(f"openai:{srv.url}#vlm", cache="off")
        out = llm.generate([chat, "plain"], SamplingParams(temperature=0, max_tokens=20))
        bodies = {b["messages"][-1]["content"] if isinstance(b["messages"][-1]["content"], str) else "parts": b
                  for _, b in srv.requests}
        sent = bodies["parts"]["messages"]
        assert sent == chat  # the exact OpenAI-format message, image URL byte for byte
        np.testing.assert_array_equal(decode_image_part(sent[0]["content"][0]), a)
        assert bodies["plain"]["messages"] == [{"role": "user", "content": "plain"}]
        assert out[0].text.startswith("echo what is in view? images=1")
        assert all(p == "/v1/chat/completions" for p, _ in srv.requests)


def test_cache_key_follows_image_content(tmp_path):
    calls = []

    def respond(prompt, req):
        calls.append(prompt)
        return f"r{len(calls)}"

    llm = load_llm("scripted", responses=respond, cache="readwrite", cache_dir=str(tmp_path))
    a, b = _img(4), _img(5)
    p = SamplingParams(temperature=0, max_tokens=4)
    key = lambda prompt: llm.cache.key(llm._cache_payload(Request(0, 0, prompt, None), p))  # noqa: E731
    assert key(_chat("q", a)) != key(_chat("q", b))
    assert key(_chat("q", a)) == key(_chat("q", a.copy()))
    assert key(_chat("q", a)) != key(_chat("q"))  # with vs without the image
    assert key("q") == key("q")
    # text prompts keep their key: the payload holds the prompt itself, untouched
    assert image_digests("q") == "q" and image_digests(_chat("q")) == _chat("q")
    first = llm.generate([_chat("q", a), _chat("q", b)], p)
    again = llm.generate([_chat("q", a.copy()), _chat("q", b)], p)
    assert [c.text for c in first] == [c.text for c in again] and all(c.cached for c in again)
    assert len(calls) == 2 and first[0].text != first[1].text


def test_text_only_backend_raises_before_running(tmp_path):
    from workbench.llm.hf import TransformersLLM

    # no model load needed: the check runs before any decoding (generate() of the Backend base)
    llm = object.__new__(TransformersLLM)
    llm.spec, llm.model, llm.model_name, llm.cache = "default", "/x", "SmolLM2-135M-Instruct", None
    llm._generate = lambda *a, **k: pytest.fail("decoding must not start")
    with pytest.raises(ImageInputError, match=r"prompt 1 contains an image part.*'default'.*text-only") as e:
        llm.generate(["fine", _chat("see", _img(6))], SamplingParams(max_tokens=2))
    assert "vllm:" in str(e.value) and "openai:" in str(e.value)
    assert isinstance(e.value, TypeError)


@pytest.mark.model
def test_embedded_model_refuses_images_and_reads_text_parts(embedded_llm):
    with pytest.raises(ImageInputError, match="SmolLM2"):
        embedded_llm.generate([_chat("see", _img(7))], SamplingParams(max_tokens=2))
    parts = [{"role": "user", "content": [text_part("Say hi.")]}]
    assert embedded_llm.render(parts) == embedded_llm.render("Say hi.")


def test_scripted_keeps_the_parts():
    seen = []
    llm = load_llm("scripted", responses=lambda p, r: seen.append(p) or "ok", cache="off")
    chat = _chat("hello", _img(8))
    llm.generate([chat, "text"], SamplingParams(max_tokens=2))
    assert llm.calls[0][0] is chat and seen[0] is chat
    assert prompt_images(llm.calls[0][0]) == prompt_images(chat) and llm.calls[0][1] == "text"


class _FakeVLLMEngine:
    """Records what the vllm backend hands to vLLM's generate (text) and chat (images) paths."""

    def __init__(self):
        self.generated, self.chatted = [], []

    def _out(self, text):
        c = types.SimpleNamespace(text=text, token_ids=[1, 2], finish_reason="stop", logprobs=None)
        return types.SimpleNamespace(outputs=[c], prompt_token_ids=[1, 2, 3])

    def generate(self, prompts, sps, use_tqdm=False):
        assert len(prompts) == len(sps)
        self.generated.append(prompts)
        return [self._out(f"gen:{p}") for p in prompts]

    def chat(self, messages, sps, use_tqdm=False):
        assert len(messages) == len(sps) and all(isinstance(m, list) for m in messages)
        self.chatted.append(messages)
        return [self._out(f"chat:{prompt_text(m)}") for m in messages]


def test_vllm_routes_image_prompts_to_chat():
    from workbench.llm.vllm_backend import VLLMBackend

    llm = object.__new__(VLLMBackend)
    llm.spec, llm.model, llm.cache = "vllm:fake-vlm", "fake-vlm", None
    llm.options = {"chat": False, "per_request_seed": True}
    llm.engine = _FakeVLLMEngine()
    llm.tokenizer = types.SimpleNamespace(chat_template=None)
    llm._vllm = types.SimpleNamespace(SamplingParams=lambda **kw: kw)
    from workbench.llm.base import Usage
    llm.usage = Usage()
    a = _img(9)
    chat = _chat("what now?", a)
    out = llm.generate(["t1", chat, "t2"], SamplingParams(max_tokens=3), seeds=[1, 2, 3])
    assert [c.text for c in out] == ["gen:t1", "chat:what now?", "gen:t2"]  # order kept
    assert llm.engine.generated == [["t1", "t2"]]
    (sent,) = llm.engine.chatted
    assert sent == [chat]  # OpenAI-format messages, the image part intact
    np.testing.assert_array_equal(decode_image_part(sent[0][0]["content"][0]), a)
