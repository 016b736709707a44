"""On-disk response cache: one JSON file per (backend, model, request, params, seed, sample).

Files are written to a temporary name and moved into place with ``os.replace`` (atomic on POSIX), so
concurrent writers never leave a half-written entry; the last writer wins, and since equal keys mean
equal requests, either value is right. A file that cannot be read or parsed is treated as a miss and
rewritten.

Only requests whose output is reproducible are cached: seeded requests and greedy ones
(temperature 0). An unseeded sampled request is always sent to the model; caching it would silently
turn repeated draws into copies of one.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .base import Completion

MODES = ("off", "read", "readwrite")


def default_cache_dir() -> Path:
    env = os.environ.get("WORKBENCH_CACHE_DIR")
    if env:
        return Path(env) / "llm"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("workbench")) / "llm"


class ResponseCache:
    def __init__(self, directory: str | os.PathLike | None = None, mode: str = "readwrite"):
        if mode not in MODES:
            raise ValueError(f"cache mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.dir = Path(directory) if directory else default_cache_dir()
        self.hits = self.misses = self.corrupt = 0

    @staticmethod
    def key(payload: dict[str, Any]) -> str:
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> Completion | None:
        if self.mode == "off":
            return None
        p = self._path(key)
        try:
            data = json.loads(p.read_text())
            if data.get("key") != key:
                raise ValueError("key mismatch")
            comp = Completion.from_dict(data["completion"])
            if not isinstance(comp.text, str):
                raise ValueError("bad text")
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, KeyError, TypeError):
            self.corrupt += 1  # ignored; rewritten by the next put()
            self.misses += 1
            return None
        self.hits += 1
        comp.cached = True
        return comp

    def put(self, key: str, comp: Completion) -> None:
        if self.mode != "readwrite":
            return
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        d = comp.to_dict()
        d["cached"] = False
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=p.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"key": key, "completion": d}, f)
            os.replace(tmp, p)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
