"""The one LLM protocol every backend implements, its data types and its errors.

A prompt is either a string (sent as a single user message through the model's chat template,
unless the backend was opened with ``chat=false``) or a chat: a list of ``{"role", "content"}`` dicts.
A message's ``content`` is a string or a list of OpenAI-style parts: ``{"type": "text", "text": ...}``
and ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`` (build them with
:func:`text_part` and :func:`image_part`). Images reach the model on the vision-capable backends
(``openai:`` sends the parts as they are; ``vllm:`` passes them to ``LLM.chat``); the text-only
``transformers:`` backend and the embedded ``default`` model raise :class:`ImageInputError` when a
prompt holds an image, and a chat whose parts are all text is joined into one string for them.

``generate(prompts, params, seeds=None) -> list[Completion]`` is batched. With ``params.n == k`` the
result holds ``len(prompts) * k`` completions, prompt-major: prompt 0's k samples, then prompt 1's...
Each completion's ``index`` names its prompt and ``sample`` its draw.

Seeds: ``seeds[i]`` (or ``params.seed`` when ``seeds`` is None) fixes prompt i's draws; sample j of
a seeded request uses ``derive_seed(seed, j)``, so a request's text does not depend on the batch it
rides in (for backends that support per-request seeds; see each backend's docstring). As in vLLM,
``params.seed`` is shared by every prompt of the call: two identical prompts with the same seed give
identical draws; use ``n`` or distinct ``seeds=`` for independent draws.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, Union, runtime_checkable

Chat = list[dict[str, Any]]  # {"role": str, "content": str | list of parts}
Prompt = Union[str, Chat]

VISION_BACKENDS = ("vllm", "openai", "scripted")
"""backends that accept image parts (scripted only records them, for tests)"""


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters, shared by every backend."""

    temperature: float = 1.0
    """softmax temperature; 0 means greedy decoding"""
    top_p: float = 1.0
    """nucleus sampling mass"""
    max_tokens: int = 256
    """maximum number of new tokens per completion"""
    n: int = 1
    """completions per prompt"""
    seed: int | None = None
    """seed for every prompt of the call (overridden per prompt by ``generate(..., seeds=)``)"""
    stop: tuple[str, ...] = ()
    """stop strings; the completion text is cut before the first one found"""
    logprobs: bool = False
    """return the chosen tokens' log-probabilities (transformers, vllm, openai)"""
    ignore_eos: bool = False
    """keep generating past end-of-sequence up to max_tokens (benchmarks; vLLM's ignore_eos); under a
    structure, the structure's end still ends the completion"""
    structure: Any = None
    """None, or a :mod:`workbench.llm.structure` value (Regex, JsonSchema, Choice, Grammar,
    ReasonThenAnswer) the completion is constrained to; a completion cut by max_tokens inside it has
    finish_reason "length" and is not a valid instance"""

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.structure is not None:
            from .structure import Structure

            if not isinstance(self.structure, Structure):
                raise TypeError("structure must be None or a workbench.llm.structure value (Regex, JsonSchema, "
                                f"Choice, Grammar, ReasonThenAnswer), got {self.structure!r:.200}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))

    def replace(self, **kw) -> "SamplingParams":
        return dataclasses.replace(self, **kw)


@dataclass
class Completion:
    """One generated completion."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS or stop string) | "length" (max_tokens reached)
    latency_s: float
    index: int = 0  # which prompt of the call
    sample: int = 0  # which of the n draws
    seed: int | None = None
    logprobs: list[float] | None = None
    tokens: list[str] | None = None
    cached: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Completion":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Usage:
    """Running totals kept by every backend wrapper (``llm.usage``)."""

    calls: int = 0
    requests: int = 0
    completions: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    seconds: float = 0.0

    def add(self, comps: Sequence[Completion], seconds: float, n_requests: int) -> None:
        self.calls += 1
        self.requests += n_requests
        self.completions += len(comps)
        self.prompt_tokens += sum(c.prompt_tokens for c in comps if not c.cached)
        self.completion_tokens += sum(c.completion_tokens for c in comps if not c.cached)
        self.cache_hits += sum(c.cached for c in comps)
        self.seconds += seconds


@runtime_checkable
class LLM(Protocol):
    """What callers need of a model: batched generation."""

    spec: str
    model: str

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None, *,
                 seeds: Sequence[int | None] | None = None) -> list[Completion]: ...


# ----------------------------------------------------------------------------------------- errors
class LLMError(RuntimeError):
    """Base class of every error the LLM layer raises."""


class UnknownBackendError(LLMError, ValueError):
    """The spec names a backend that does not exist."""


class BackendOptionError(LLMError, ValueError):
    """A ``?key=value`` option in the spec is unknown or has the wrong type."""


class MissingExtraError(LLMError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""

    def __init__(self, package: str, extra: str, what: str = ""):
        self.package, self.extra = package, extra
        super().__init__(
            f"{what or 'this backend'} needs the Python package '{package}', which is not installed. "
            f"Install it with: pip install 'workbench[{extra}]'  (or: pip install {package})")


class ModelNotFoundError(LLMError, FileNotFoundError):
    """The model is not on disk and may not be downloaded (offline) or does not exist."""


class ServerUnreachableError(LLMError, ConnectionError):
    """An HTTP backend could not reach its server after all retries."""


class MalformedResponseError(LLMError, ValueError):
    """A server answered, but not with the response shape the protocol expects."""


class StructureUnsupportedError(LLMError, ValueError):
    """A backend or server cannot enforce the requested structure (it refused it, or ignored it)."""


class ImageInputError(LLMError, TypeError):
    """A prompt holds an image part, and the backend it was sent to reads text only."""

    def __init__(self, backend: str, model: str = "", index: int | None = None):
        self.backend, self.model, self.index = backend, model, index
        where = "a prompt" if index is None else f"prompt {index}"
        super().__init__(
            f"{where} contains an image part, but backend '{backend}'"
            f"{f' (model {model!r})' if model else ''} is text-only and cannot see images; "
            "nothing was sent and no image is dropped silently. Send image prompts to a vision-capable "
            "backend: 'vllm:<vision-language model>' (e.g. vllm:Qwen/Qwen2.5-VL-7B-Instruct) or "
            "'openai:<base url>#<model>' (an OpenAI-compatible server with a vision model), or leave "
            "the images out of the prompt.")


def _check_part(part: Any) -> None:
    if not isinstance(part, dict) or "type" not in part:
        raise TypeError(f"a content part must be a dict with a 'type', got {part!r:.200}")
    if part["type"] == "text":
        if not isinstance(part.get("text"), str):
            raise TypeError(f"a text part needs a string 'text', got {part!r:.200}")
    elif part["type"] == "image_url":
        iu = part.get("image_url")
        if not isinstance(iu, dict) or not isinstance(iu.get("url"), str) or not iu["url"]:
            raise TypeError(f"an image_url part needs {{'image_url': {{'url': str}}}}, got {part!r:.200}")
    else:
        raise TypeError(f"unknown content part type {part['type']!r}; known: 'text', 'image_url'")


def as_chat(prompt: Prompt) -> Chat:
    """A prompt as a chat (a string becomes one user message). Content parts are checked, kept as they are.

    >>> as_chat("hi")
    [{'role': 'user', 'content': 'hi'}]
    """
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)) and all(isinstance(m, dict) and "role" in m and "content" in m
                                                 for m in prompt):
        out = []
        for m in prompt:
            c = m["content"]
            if isinstance(c, (list, tuple)):
                for part in c:
                    _check_part(part)
                c = list(c)
            elif not isinstance(c, str):
                raise TypeError(f"message content must be a string or a list of parts, got {c!r:.200}")
            out.append(dict(role=m["role"], content=c))
        return out
    raise TypeError(f"a prompt must be a string or a list of {{'role', 'content'}} dicts, got {prompt!r:.200}")


# ------------------------------------------------------------------------------ multimodal parts
def text_part(text: str) -> dict[str, Any]:
    """An OpenAI-style text part.

    >>> text_part("hi")
    {'type': 'text', 'text': 'hi'}
    """
    if not isinstance(text, str):
        raise TypeError(f"text_part takes a string, got {type(text).__name__}")
    return {"type": "text", "text": text}


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_part(img: Any) -> dict[str, Any]:
    """An OpenAI-style image part holding ``img`` as a base64 PNG data URL.

    ``img`` is a uint8 array of shape (H, W, 3) (RGB), or PNG file bytes (sent unchanged). Encoding
    is deterministic (same pixels -> same URL), so response-cache keys follow the image content.

    >>> import numpy as np
    >>> p = image_part(np.zeros((2, 3, 3), np.uint8))
    >>> p["type"], p["image_url"]["url"][:22], decode_image_part(p).shape
    ('image_url', 'data:image/png;base64,', (2, 3, 3))
    """
    if isinstance(img, (bytes, bytearray, memoryview)):
        data = bytes(img)
        if not data.startswith(PNG_SIGNATURE):
            raise ValueError("image_part takes PNG bytes (they must start with the PNG signature) or a "
                             "uint8 (H, W, 3) array")
    else:
        import numpy as np

        arr = np.asarray(img)
        if arr.dtype != np.uint8:
            raise ValueError(f"image_part needs a uint8 array, got dtype {arr.dtype} (scale to 0-255 and "
                             "cast with .astype(np.uint8))")
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(f"image_part needs an RGB array of shape (H, W, 3), got {arr.shape}")
        try:
            from PIL import Image
        except ImportError:
            raise ImportError("image_part encodes PNG with Pillow, which is not installed: pip install pillow") from None
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(arr), mode="RGB").save(buf, format="PNG")
        data = buf.getvalue()
    return {"type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode("ascii")}}


def decode_image_part(part: dict[str, Any]):
    """The pixels of a base64 PNG image part, as a uint8 (H, W, 3) array (inverse of :func:`image_part`)."""
    _check_part(part)
    if part["type"] != "image_url":
        raise ValueError("decode_image_part takes an image_url part")
    url = part["image_url"]["url"]
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise ValueError(f"only base64 data URLs can be decoded here, got {url[:60]!r}")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as e:
        raise ValueError(f"malformed base64 in image data URL: {e}") from None
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def prompt_parts(prompt: Prompt) -> list[dict[str, Any]]:
    """Every content part of a prompt in order (a string content counts as one text part)."""
    out = []
    for m in as_chat(prompt):
        c = m["content"]
        out.extend([text_part(c)] if isinstance(c, str) else c)
    return out


def prompt_images(prompt: Prompt) -> list[dict[str, Any]]:
    """The image parts of a prompt, in order.

    >>> prompt_images("no images here")
    []
    """
    if isinstance(prompt, str):
        return []
    return [p for p in prompt_parts(prompt) if p["type"] == "image_url"]


def has_image(prompt: Prompt) -> bool:
    """Whether a prompt holds at least one image part."""
    return bool(prompt_images(prompt))


def text_only_chat(prompt: Prompt, backend: str = "", model: str = "") -> Chat:
    """A chat whose contents are plain strings, for text-only chat templates: text parts of a message
    are joined with newlines; an image part raises :class:`ImageInputError`.

    >>> text_only_chat([{"role": "user", "content": [text_part("a"), text_part("b")]}])
    [{'role': 'user', 'content': 'a\\nb'}]
    """
    out = []
    for m in as_chat(prompt):
        c = m["content"]
        if not isinstance(c, str):
            if any(p["type"] != "text" for p in c):
                raise ImageInputError(backend or "text-only", model)
            c = "\n".join(p["text"] for p in c)
        out.append({"role": m["role"], "content": c})
    return out


def image_digests(prompt: Prompt) -> Prompt:
    """The prompt with each image URL replaced by ``sha256:<hex>`` of the URL (its content): what
    cache keys hash, so a different image gives a different key without hashing megabytes twice."""
    if isinstance(prompt, str) or not has_image(prompt):
        return prompt
    out = []
    for m in as_chat(prompt):
        c = m["content"]
        if not isinstance(c, str):
            c = [p if p["type"] != "image_url" else
                 {**p, "image_url": {**p["image_url"],
                                     "url": "sha256:" + hashlib.sha256(p["image_url"]["url"].encode()).hexdigest()}}
                 for p in c]
        out.append({"role": m["role"], "content": c})
    return out


def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string. Returns (text, stopped).

    >>> apply_stop("a b STOP c", ["STOP"])
    ('a b ', True)
    """
    cut = None
    for s in stop:
        if not s:
            continue
        i = text.find(s)
        if i >= 0 and (cut is None or i < cut):
            cut = i
    return (text, False) if cut is None else (text[:cut], True)
