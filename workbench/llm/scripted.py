"""``scripted``: a deterministic test double for unit tests of plumbing. Never a notebook default.

``ScriptedLLM(responses)`` answers from
- a list of strings (in order, cycling),
- a dict ``{substring: response}`` (first key found in the prompt text; key ``None`` = fallback), or
- a callable ``f(prompt, request) -> str`` (``request.seed``, ``request.sample``, ``request.index``).

Tokens are whitespace-separated words; ``max_tokens`` and ``stop`` are honoured like a real model.
Under ``SamplingParams.structure`` each scripted response (before stop strings and ``max_tokens`` cut
it) must satisfy the structure, else :class:`~workbench.llm.structure.StructureViolationError` is
raised: plumbing tests cannot pass on text a constrained model could never produce.
Every prompt it saw is kept in ``calls`` (one list per ``generate`` call) for tests to inspect, image
parts included, exactly as they were passed (it accepts images; ``prompt_text`` reads the text only).
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import types
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


def _describe(obj: Any, seen: set[int], depth: int) -> Any:
    """A JSON-able description of what ``obj`` computes (the scripted backend's cache identity)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (bytes, bytearray)):
        return ["bytes", bytes(obj).hex()]
    if id(obj) in seen or depth > 6:
        return ["ref", type(obj).__qualname__, getattr(obj, "__qualname__", "")]
    seen = seen | {id(obj)}
    d = functools.partial(_describe, seen=seen, depth=depth + 1)
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [d(x) for x in obj]
        return [type(obj).__name__, sorted(items, key=repr) if isinstance(obj, (set, frozenset)) else items]
    if isinstance(obj, Mapping):
        return ["map", [[d(k), d(v)] for k, v in obj.items()]]
    if isinstance(obj, types.ModuleType):
        return ["module", obj.__name__]
    if isinstance(obj, type):
        return ["class", obj.__module__, obj.__qualname__]
    if isinstance(obj, types.CodeType):
        return ["code", obj.co_code.hex(), [d(c) for c in obj.co_consts], list(obj.co_names)]
    if isinstance(obj, types.FunctionType):
        cells = []
        for c in obj.__closure__ or ():
            try:
                cells.append(d(c.cell_contents))
            except ValueError:  # an empty cell
                cells.append(["empty"])
        names = _all_names(obj.__code__)
        glob = {n: d(obj.__globals__[n]) for n in sorted(names) if n in obj.__globals__}
        return ["function", obj.__module__, obj.__qualname__, d(obj.__code__), d(obj.__defaults__),
                d(obj.__kwdefaults__), cells, glob]
    if isinstance(obj, types.MethodType):
        return ["method", d(obj.__func__), d(obj.__self__)]
    if isinstance(obj, functools.partial):
        return ["partial", d(obj.func), d(obj.args), d(obj.keywords)]
    call = getattr(type(obj), "__call__", None)
    state = getattr(obj, "__dict__", None)
    if isinstance(call, types.FunctionType) or state is not None:
        return ["object", type(obj).__module__, type(obj).__qualname__, d(call), d(state or {})]
    return ["repr", repr(obj)]


def _all_names(code: types.CodeType) -> set[str]:
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _all_names(c)
    return out


class ScriptedLLM(Backend):
    name = "scripted"
    OPTIONS = {"latency": (float, 0.0)}

    def __init__(self, responses: Sequence[str] | Mapping[Any, str] | Callable[[Prompt, Request], str] = ("",),
                 options: dict | None = None, *, spec: str = "scripted", cache=None, model: str = "scripted"):
        self.responses = responses  # before Backend.__init__, which computes the identity from the script
        super().__init__(model, options, spec=spec, cache=cache)
        self._cycle = itertools.cycle(list(responses)) if isinstance(responses, (list, tuple)) else None
        self.calls: list[list[Prompt]] = []

    def model_identity(self) -> str:
        """The script's content, so a different script never reads another's cached answers: the
        strings of a list or dict; of a callable, its code (bytecode, constants, defaults) and the
        values it closes over or reads from its module, as they are at load. A callable whose answers
        depend on state it reaches some other way should run with ``cache="off"``."""
        blob = json.dumps(_describe(self.responses, set(), 0), separators=(",", ":"), default=repr)
        return "scripted-sha256:" + hashlib.sha256(blob.encode()).hexdigest()

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
            if params.structure is not None:  # what a constrained model could write, before stop/max_tokens
                params.structure.check(full, f"scripted response to prompt {r.index}")
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
