"""On-disk response cache: one JSON file per (backend, model, request, params, seed, sample).

Files are written to a temporary name and moved into place with ``os.replace`` (atomic on POSIX), so
concurrent writers never leave a half-written entry; the last writer wins, and since equal keys mean
equal requests, either value is right. A file that cannot be read, parsed, or does not hold an entry
of the expected shape and types (for this very key) is counted in ``corrupt``, treated as a miss and
rewritten. A write that fails (an unwritable or full disk) never loses the completion the model
produced: it is returned, and one warning says the cache is not being written. Temporary files of a
writer that was killed between write and rename (``.tmp-*``) are removed when a cache opens for
writing, once older than ``stale_tmp_seconds`` (default 10 minutes, well past any live write).

Keys hash the request together with ``CACHE_FORMAT``, so entries of an older key layout (the model's
path rather than its content identity) are never read.

Only requests whose output is reproducible are cached: seeded requests and greedy ones
(temperature 0). An unseeded sampled request is always sent to the model; caching it would silently
turn repeated draws into copies of one.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from .base import Completion

MODES = ("off", "read", "readwrite")
CACHE_FORMAT = 2
"""version of the key layout and entry format; 2: keys on the model's content identity"""
STALE_TMP_SECONDS = 600.0


def default_cache_dir() -> Path:
    env = os.environ.get("WORKBENCH_CACHE_DIR")
    if env:
        return Path(env) / "llm"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("workbench")) / "llm"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_entry(data: Any, key: str) -> Completion:
    """The completion a cache file holds, or ValueError naming what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError(f"entry is a {type(data).__name__}, not an object")
    if data.get("key") != key:
        raise ValueError("key mismatch")
    d = data.get("completion")
    if not isinstance(d, dict):
        raise ValueError("no completion object")
    checks = {"text": lambda v: isinstance(v, str), "prompt_tokens": lambda v: _is_int(v) and v >= 0,
              "completion_tokens": lambda v: _is_int(v) and v >= 0,
              "finish_reason": lambda v: v in ("stop", "length"), "latency_s": lambda v: _is_num(v) and v >= 0}
    for name, ok in checks.items():
        if name not in d or not ok(d[name]):
            raise ValueError(f"bad or missing field {name!r}")
    optional = {"index": _is_int, "sample": _is_int, "seed": lambda v: v is None or _is_int(v),
                "logprobs": lambda v: v is None or (isinstance(v, list) and all(_is_num(x) for x in v)),
                "tokens": lambda v: v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
                "cached": lambda v: isinstance(v, bool), "meta": lambda v: isinstance(v, dict)}
    for name, ok in optional.items():
        if name in d and not ok(d[name]):
            raise ValueError(f"bad field {name!r}")
    return Completion.from_dict(d)


class ResponseCache:
    def __init__(self, directory: str | os.PathLike | None = None, mode: str = "readwrite", *,
                 stale_tmp_seconds: float = STALE_TMP_SECONDS):
        if mode not in MODES:
            raise ValueError(f"cache mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.dir = Path(directory) if directory else default_cache_dir()
        self.hits = self.misses = self.corrupt = self.write_errors = 0
        self.stale_tmp_removed = 0
        if mode == "readwrite":
            self._remove_stale_tmp(stale_tmp_seconds)

    def _remove_stale_tmp(self, older_than: float) -> None:
        """Delete ``.tmp-*`` files left by writers killed mid-write (never a live writer's: those are
        younger than ``older_than`` seconds)."""
        now = time.time()
        try:
            leftovers = list(self.dir.glob("??/.tmp-*"))
        except OSError:
            return
        for t in leftovers:
            try:
                if now - t.lstat().st_mtime >= older_than:
                    t.unlink()
                    self.stale_tmp_removed += 1
            except OSError:  # already gone (another process cleaned it) or not ours to remove
                pass

    @staticmethod
    def key(payload: dict[str, Any]) -> str:
        blob = json.dumps({"cache_format": CACHE_FORMAT, **payload}, sort_keys=True, ensure_ascii=False,
                          default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> Completion | None:
        if self.mode == "off":
            return None
        p = self._path(key)
        try:
            comp = check_entry(json.loads(p.read_bytes()), key)
        except (FileNotFoundError, NotADirectoryError):
            self.misses += 1
            return None
        except (OSError, ValueError, RecursionError):  # unreadable, not JSON, not an entry, nested too deep
            self.corrupt += 1  # ignored; rewritten by the next put()
            self.misses += 1
            return None
        self.hits += 1
        comp.cached = True
        return comp

    def put(self, key: str, comp: Completion) -> bool:
        """Store a completion; False (with one warning per cache) when it could not be written."""
        if self.mode != "readwrite":
            return False
        p = self._path(key)
        d = comp.to_dict()
        d["cached"] = False
        tmp = None
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if p.is_dir() and not p.is_symlink():
                p.rmdir()  # an (empty) folder squatting on the entry's name; a full one raises below
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=p.parent)
            with os.fdopen(fd, "w") as f:
                json.dump({"key": key, "completion": d}, f)
            os.replace(tmp, p)
            return True
        except OSError as e:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            self.write_errors += 1
            if self.write_errors == 1:
                warnings.warn(f"response cache {self.dir} cannot be written ({type(e).__name__}: {e}); "
                              "completions are returned but not cached. Fix the folder, or pass "
                              "cache='read' / 'off' (or set WORKBENCH_LLM_CACHE) to stop writing.",
                              RuntimeWarning, stacklevel=3)
            return False
        except BaseException:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            raise
