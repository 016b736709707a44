"""The one LLM protocol every backend implements, its data types and its errors.

A prompt is either a string (sent as a single user message through the model's chat template,
unless the backend was opened with ``chat=false``) or a chat: a list of ``{"role", "content"}`` dicts.

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

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, Union, runtime_checkable

Chat = list[dict[str, str]]
Prompt = Union[str, Chat]


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
    """keep generating past end-of-sequence up to max_tokens (benchmarks; vLLM's ignore_eos)"""

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
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


def as_chat(prompt: Prompt) -> Chat:
    """A prompt as a chat (a string becomes one user message).

    >>> as_chat("hi")
    [{'role': 'user', 'content': 'hi'}]
    """
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)) and all(isinstance(m, dict) and "role" in m and "content" in m
                                                 for m in prompt):
        return [dict(role=m["role"], content=m["content"]) for m in prompt]
    raise TypeError(f"a prompt must be a string or a list of {{'role', 'content'}} dicts, got {prompt!r:.200}")


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
