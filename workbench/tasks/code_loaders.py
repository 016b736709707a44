"""Loaders of code problems (split out of :mod:`workbench.tasks.code_tasks`, which re-exports every public name).

:func:`load_livecodebench` (HF ``livecodebench/code_generation_lite``, release tag and contest date window,
as LiveCodeBench selects problems against contamination) and :func:`load_code_jsonl` (local ``{"id",
"question", "tests": [{"input", "output"}]}`` lines, optional ``"fn_name"``, ``"starter_code"`` and per-test
``"testtype": "functional"`` for call-based problems). Items that cannot become a problem are kept in
``task.malformed`` with a reason, never silently dropped.

LiveCodeBench's private tests are ``base64(zlib(pickle(json)))``. :func:`decode_private_tests` inflates
them with a streaming ``zlib.decompressobj`` that stops at ``max_bytes`` (default
:data:`MAX_PRIVATE_TESTS_BYTES`, 256 MiB; a 400 kB blob used to inflate to 300 MB unchecked) and raises
``ValueError`` saying so; the unpickler refuses every global (plain data only). Reconstruction: the cap's
value is ours (``load_livecodebench(max_private_tests_mb=...)`` changes it).
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import os
import pickle
import re
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .base import MalformedItem, Problem
from .code_judge import check_tests
from .loaders import iter_jsonl

if TYPE_CHECKING:
    from .code_tasks import CodeTask

MAX_PRIVATE_TESTS_BYTES = 256 * 2 ** 20
"""largest decompressed size of one problem's private tests (LiveCodeBench's largest are tens of MB)"""


def _finish(problems, bad, source, strict, name, **task_kw) -> CodeTask:
    if bad:
        msg = f"{len(bad)} malformed item(s) in {source}: " + "; ".join(f"#{b.position}: {b.reason}" for b in bad[:5])
        if strict:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=3)
    from .code_tasks import CodeTask  # here, not at the top: code_tasks re-exports this module

    return CodeTask(problems, name=name, malformed=bad, **task_kw)


# ----------------------------------------------------------------------------------- loaders
def load_code_jsonl(path: str | os.PathLike, *, limit: int | None = None, strict: bool = False,
                    **task_kw) -> CodeTask:
    """Code problems from a local JSONL file, one ``{"id", "question", "tests": [{"input", "output"}]}``
    per line. Bad lines (invalid JSON, missing question, bad tests, duplicate id) are reported in
    ``task.malformed`` with a warning (``strict=True``: raise). ``task_kw`` go to :class:`CodeTask`.
    """
    path = Path(path)
    problems, bad, ids = [], [], set()
    for i, line, r in iter_jsonl(path, limit):
        if isinstance(r, MalformedItem):
            bad.append(r)
            continue
        if not isinstance(r, Mapping):
            bad.append(MalformedItem(str(path), i, f"not an object: {type(r).__name__}", line[:200]))
            continue
        q = r.get("question")
        if not isinstance(q, str) or not q.strip():
            bad.append(MalformedItem(str(path), i, "missing or empty 'question'", line[:200]))
            continue
        pid = str(r["id"]) if r.get("id") is not None else f"{path.stem}/{i}"
        if pid in ids:
            bad.append(MalformedItem(str(path), i, f"duplicate id {pid!r}", line[:200]))
            continue
        try:
            fn = r.get("fn_name")
            tests = check_tests(r.get("tests"), f"line {i}", fn)
        except ValueError as e:
            bad.append(MalformedItem(str(path), i, str(e), line[:200]))
            continue
        ids.add(pid)
        meta = {"tests": tests, **({"fn_name": fn} if fn else {})}
        problems.append(Problem(pid, with_starter(q, r.get("starter_code")), f"{len(tests)} tests",
                                source=str(path), meta=meta))
    return _finish(problems, bad, str(path), strict, path.stem, **task_kw)


LCB_REPO = "livecodebench/code_generation_lite"
# release tag -> data files of the dataset repo (LiveCodeBench adds one file per release)
LCB_FILES = ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl"]


def lcb_files(release: str) -> list[str]:
    """Data files of a LiveCodeBench release tag: ``release_vN`` (cumulative, v1..vN), ``release_latest``
    (all), ``vN`` (that release's new problems only) or ``vA_vB`` (releases A..B). The file names follow the
    dataset repository's loading script (one ``test*.jsonl`` per release).

    >>> lcb_files("release_v2"), lcb_files("v6"), lcb_files("v5_v6")
    (['test.jsonl', 'test2.jsonl'], ['test6.jsonl'], ['test5.jsonl', 'test6.jsonl'])
    """
    n = len(LCB_FILES)
    if release == "release_latest":
        return list(LCB_FILES)
    m = re.fullmatch(r"release_v(\d+)|v(\d+)(?:_v(\d+))?", release)
    if not m:
        raise ValueError(f"unknown LiveCodeBench release {release!r}; use release_v1..release_v{n}, release_latest, "
                         f"v1..v{n} or vA_vB")
    if m.group(1):
        a, b = 1, int(m.group(1))
    else:
        a = int(m.group(2))
        b = int(m.group(3)) if m.group(3) else a
    if not 1 <= a <= b <= n:
        raise ValueError(f"LiveCodeBench release {release!r} out of range v1..v{n}")
    return LCB_FILES[a - 1:b]


def with_starter(question: str, starter: str | None) -> str:
    """The question followed by its starter code, if any (LiveCodeBench shows it to the model)."""
    if not starter or not starter.strip():
        return question
    return f"{question.rstrip()}\n\nComplete this starter code:\n```python\n{starter.strip()}\n```"


class _StringsOnlyUnpickler(pickle.Unpickler):
    # LiveCodeBench stores private tests as base64(zlib(pickle(json string))). Unpickling runs code when a
    # pickle names a global; refusing every global limits it to plain data.
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in LiveCodeBench test data")


def inflate_capped(data: bytes, max_bytes: int) -> bytes:
    """``zlib.decompress(data)``, stopping with ``ValueError`` once the output would exceed ``max_bytes``
    (streaming: at most ``max_bytes`` plus one chunk is ever held).

    >>> inflate_capped(zlib.compress(b"ab" * 10), 20)
    b'abababababababababab'
    >>> inflate_capped(zlib.compress(b"x" * 10**6), 1000)
    Traceback (most recent call last):
    ...
    ValueError: compressed data inflates to more than 1000 bytes (from 991 compressed); raise the cap (max_bytes) if the data are trusted
    """
    d, parts, size, chunk = zlib.decompressobj(), [], 0, 1 << 20
    buf = data
    while True:
        out = d.decompress(buf, chunk)
        size += len(out)
        if size > max_bytes:
            raise ValueError(f"compressed data inflates to more than {max_bytes} bytes (from {len(data)} compressed); "
                             "raise the cap (max_bytes) if the data are trusted")
        parts.append(out)
        buf = d.unconsumed_tail
        if d.eof:
            break
        if not buf and not out:
            raise ValueError("truncated zlib data (the stream ends before its end marker)")
    return b"".join(parts)


def decode_private_tests(blob: str, max_bytes: int = MAX_PRIVATE_TESTS_BYTES) -> list:
    """LiveCodeBench's private test cases: JSON inside a pickle, zlib-compressed, base64-encoded. Inflating
    stops with ``ValueError`` beyond ``max_bytes`` (see the module docstring)."""
    try:
        raw = base64.b64decode(blob)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"private tests are not base64 ({e})") from None
    data = _StringsOnlyUnpickler(io.BytesIO(inflate_capped(raw, max_bytes))).load()
    return json.loads(data) if isinstance(data, (str, bytes)) else data


def lcb_problem(r: Mapping[str, Any], source: str, max_private_bytes: int = MAX_PRIVATE_TESTS_BYTES) -> Problem:
    """One LiveCodeBench row as a :class:`Problem` (public + private tests); ``ValueError`` if it does not fit
    (private tests inflating beyond ``max_private_bytes`` included)."""
    q = r.get("question_content")
    if not isinstance(q, str) or not q.strip():
        raise ValueError("missing question_content")
    pub = r.get("public_test_cases") or "[]"
    tests = json.loads(pub) if isinstance(pub, str) else list(pub)
    priv = r.get("private_test_cases")
    if priv:
        try:
            tests += decode_private_tests(priv, max_private_bytes) if isinstance(priv, str) else list(priv)
        except Exception as e:
            raise ValueError(f"private tests could not be decoded ({type(e).__name__}: {e})") from None
    md = r.get("metadata") or "{}"
    try:
        fn = (json.loads(md) if isinstance(md, str) else dict(md)).get("func_name")
    except (json.JSONDecodeError, TypeError, ValueError):
        raise ValueError(f"metadata is not a JSON object: {str(md)[:100]}") from None
    tests = check_tests(tests, str(r.get("question_id")), fn)
    meta = {"tests": tests, **{k: r.get(k) for k in ("platform", "contest_date", "difficulty", "question_title")}}
    if fn:
        meta["fn_name"] = fn
    return Problem(str(r.get("question_id")), with_starter(q, r.get("starter_code")), f"{len(tests)} tests",
                   source=source, meta=meta)


def load_livecodebench(release: str = "release_v6", *, start_date: str | None = None, end_date: str | None = None,
                       platforms: Sequence[str] | None = None, limit: int | None = None, strict: bool = False,
                       max_private_tests_mb: float = MAX_PRIVATE_TESTS_BYTES / 2 ** 20, **task_kw) -> CodeTask:
    """LiveCodeBench problems from the Hugging Face hub (network needed once; files are cached).

    ``start_date``/``end_date`` (``YYYY-MM-DD``, inclusive) keep problems whose ``contest_date`` falls in
    the window, as LiveCodeBench does to evaluate only problems released after a model's cutoff.
    Call-based problems carry ``meta["fn_name"]`` from the row's metadata; starter code is appended to the question.
    ``max_private_tests_mb``: a problem whose private tests inflate beyond it is reported in ``task.malformed``.
    """
    if not max_private_tests_mb > 0:
        raise ValueError(f"max_private_tests_mb must be > 0, got {max_private_tests_mb!r}")
    files = lcb_files(release)
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ImportError("loading LiveCodeBench needs huggingface_hub: pip install huggingface_hub") from None
    try:
        paths = [hf_hub_download(LCB_REPO, f, repo_type="dataset") for f in files]
    except Exception as e:
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
        raise RuntimeError(
            f"could not load {LCB_REPO!r} ({release}) from the Hugging Face hub ({type(e).__name__}: {str(e)[:200]})."
            + (" HF_HUB_OFFLINE=1 is set: unset it with network access, or" if offline else " Without network,")
            + " write the problems as JSONL lines {\"id\", \"question\", \"tests\": [{\"input\", \"output\"}]} and use "
              "workbench.tasks.code_tasks.load_code_jsonl(path) (task spec codejsonl:<path>).") from e
    problems, bad, pos = [], [], 0
    source = f"hf:{LCB_REPO}@{release}"
    for path in paths:
        with open(path) as f:
            for line in f:
                pos += 1
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    bad.append(MalformedItem(source, pos - 1, f"invalid JSON: {e.msg}", line[:200]))
                    continue
                date = str(r.get("contest_date") or "")[:10]
                if (start_date and date < start_date) or (end_date and date > end_date):
                    continue  # outside the contamination window: selected out, by request
                if platforms and r.get("platform") not in platforms:
                    continue
                try:
                    problems.append(lcb_problem(r, source, int(max_private_tests_mb * 2 ** 20)))
                except (ValueError, json.JSONDecodeError) as e:
                    bad.append(MalformedItem(source, pos - 1, str(e)[:300], str(r.get("question_id"))))
                if limit is not None and len(problems) >= limit:
                    break
        if limit is not None and len(problems) >= limit:
            break
    return _finish(problems, bad, source, strict, f"lcb_{release}", **task_kw)


def make_code_task(spec: str, *, limit: int | None = None) -> CodeTask:
    """Task spec strings: ``lcb:<release>[:<start_date>[:<end_date>]]`` or ``codejsonl:<path>``."""
    kind, _, arg = spec.partition(":")
    if kind == "lcb":
        release, _, window = arg.partition(":")
        start, _, end = window.partition(":")
        return load_livecodebench(release or "release_v6", start_date=start or None, end_date=end or None, limit=limit)
    if kind == "codejsonl":
        if not arg:
            raise ValueError("codejsonl:<path> needs a path")
        return load_code_jsonl(arg, limit=limit)
    raise ValueError(f"not a code task spec: {spec!r}; use lcb:<release>[:<start>[:<end>]] or codejsonl:<path>")


__all__ = ["load_code_jsonl", "load_livecodebench", "lcb_files", "LCB_REPO", "LCB_FILES", "with_starter",
           "decode_private_tests", "inflate_capped", "MAX_PRIVATE_TESTS_BYTES", "lcb_problem", "make_code_task"]
