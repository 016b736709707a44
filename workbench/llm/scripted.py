"""``scripted``: a deterministic test double for unit tests of plumbing. Never a notebook default.

``ScriptedLLM(responses)`` answers from
- a list of strings (in order, cycling),
- a dict ``{substring: response}`` (first key found in the prompt text; key ``None`` = fallback), or
- a callable ``f(prompt, request) -> str`` (``request.seed``, ``request.sample``, ``request.index``).

Tokens are whitespace-separated words; ``max_tokens`` and ``stop`` are honoured like a real model.
Every prompt it saw is kept in ``calls`` (one list per ``generate`` call) for tests to inspect, image
parts included, exactly as they were passed (it accepts images; ``prompt_text`` reads the text only).
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Mapping, Sequence

from .backend import Backend, Request
from .base import Completion, Prompt, SamplingParams, apply_stop, as_chat


def prompt_text(prompt: Prompt) -> str:
    """The text of a prompt (a chat's messages joined; of a message with parts, its text parts joined,
    images left out).

    >>> prompt_text([{"role": "user", "content": [{"type": "text", "text": "a"},
    ...              {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}])
    'a'
    """
    if isinstance(prompt, str):
        return prompt
    return "\n".join(m["content"] if isinstance(m["content"], str)
                     else "\n".join(p["text"] for p in m["content"] if p["type"] == "text")
                     for m in as_chat(prompt))


class ScriptedLLM(Backend):
    name = "scripted"
    OPTIONS = {"latency": (float, 0.0)}

    def __init__(self, responses: Sequence[str] | Mapping[Any, str] | Callable[[Prompt, Request], str] = ("",),
                 options: dict | None = None, *, spec: str = "scripted", cache=None, model: str = "scripted"):
        super().__init__(model, options, spec=spec, cache=cache)
        self.responses = responses
        self._cycle = itertools.cycle(list(responses)) if isinstance(responses, (list, tuple)) else None
        self.calls: list[list[Prompt]] = []

    def _respond(self, r: Request) -> str:
        if callable(self.responses):
            return self.responses(r.prompt, r)
        if self._cycle is not None:
            return next(self._cycle)
        text = prompt_text(r.prompt)
        for k, v in self.responses.items():
            if k is not None and k in text:
                return v
        if None in self.responses:
            return self.responses[None]
        raise KeyError(f"scripted backend has no response for prompt: {text[:200]!r}")

    def _generate(self, requests: list[Request], params: SamplingParams) -> list[Completion]:
        self.calls.append([r.prompt for r in requests])
        out = []
        for r in requests:
            full = self._respond(r)
            text, stopped = apply_stop(full, params.stop)
            words = text.split(" ")
            finish = "stop"
            if len(text.split()) > params.max_tokens:
                # keep the first max_tokens whitespace tokens
                kept, n = [], 0
                for w in words:
                    n += bool(w)
                    if n > params.max_tokens:
                        break
                    kept.append(w)
                text, finish = " ".join(kept), "length"
            out.append(Completion(text=text, prompt_tokens=len(prompt_text(r.prompt).split()),
                                  completion_tokens=len(text.split()), finish_reason=finish,
                                  latency_s=self.options["latency"],
                                  logprobs=[0.0] * len(text.split()) if params.logprobs else None))
        return out
