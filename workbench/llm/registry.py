"""Backends by spec string, loaded lazily.

Spec grammar::

    default[?opts]                        the embedded SmolLM2-135M-Instruct (transformers engine, our PyTorch loop)
    transformers[?opts]                   the same (explicit engine name)
    onnx[?opts]                           the embedded model on onnxruntime-genai (float32; same texts, faster)
    transformers:<dir or hub id>[?opts]   e.g. transformers:Qwen/Qwen2.5-0.5B-Instruct?dtype=bfloat16
    onnx:<dir>[?opts]                     an onnxruntime-genai model folder (genai_config.json)
    vllm:<model>[?opts]                   e.g. vllm:Qwen/Qwen3-4B-Instruct-2507?tensor_parallel_size=4&enable_prefix_caching=true
    openai:<base url>#<model>[?opts]      any OpenAI-compatible server, e.g. openai:http://127.0.0.1:8000/v1#smollm2
    scripted                              test double (responses passed in code)

Options are ``key=value`` pairs joined by ``&``; each backend validates names and types.
"""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl

from .base import BackendOptionError, UnknownBackendError
from .cache import ResponseCache

BACKENDS = ("default", "transformers", "onnx", "vllm", "openai", "scripted")


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split a spec into (backend, model, options).

    >>> parse_spec("vllm:Qwen/Qwen3-4B?tensor_parallel_size=4&enable_prefix_caching=true")
    ('vllm', 'Qwen/Qwen3-4B', {'tensor_parallel_size': '4', 'enable_prefix_caching': 'true'})
    >>> parse_spec("openai:http://127.0.0.1:8000/v1#smol?timeout=5")
    ('openai', 'http://127.0.0.1:8000/v1#smol', {'timeout': '5'})
    >>> parse_spec("default")
    ('default', '', {})
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UnknownBackendError(f"empty backend spec; use one of {BACKENDS}")
    spec = spec.strip()
    name, colon, rest = spec.partition(":")
    if "?" in name:  # "default?dtype=float32"
        name, _, q = name.partition("?")
        rest = "?" + q + rest
    name = name.strip().lower()
    if name not in BACKENDS:
        raise UnknownBackendError(f"unknown backend {name!r} in spec {spec!r}; valid backends: "
                                  + ", ".join(BACKENDS) + " (e.g. 'transformers:<model dir or hub id>')")
    if name == "openai":
        base, sep, tail = rest.partition("#")
        if not sep or not base:
            raise BackendOptionError(f"openai spec must be 'openai:<base url>#<model>', got {spec!r}")
        model, _, q = tail.partition("?")
        model = f"{base}#{model}"
    else:
        model, _, q = rest.partition("?")
    opts: dict[str, str] = {}
    if q:
        try:
            pairs = parse_qsl(q, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise BackendOptionError(f"malformed options {q!r} in spec {spec!r}; use key=value&key=value") from None
        for k, v in pairs:
            if k in opts:
                raise BackendOptionError(f"option {k!r} given twice in spec {spec!r}")
            opts[k] = v
    if not model and (name == "vllm" or name in ("transformers", "onnx") and colon):
        # bare 'transformers' is the embedded model on the transformers engine; 'transformers:' names nothing
        raise BackendOptionError(f"spec {spec!r} names no model: use '{name}:<model dir or hub id>'")
    if name in ("default", "scripted") and model:
        hint = ("the embedded model; for another model use 'transformers:" + model + "'" if name == "default"
                else "the test double, whose answers are passed as responses=")
        raise BackendOptionError(f"backend {name!r} takes no model name, but spec {spec!r} names {model!r}: "
                                 f"'{name}' is {hint}")
    return name, model, opts


def load_llm(spec: str = "default", *, cache: str | None = None, cache_dir: str | None = None,
             responses: Any = None, **options: Any):
    """Open a backend from its spec. ``cache`` is off | read | readwrite (default: $WORKBENCH_LLM_CACHE
    or readwrite). Keyword ``options`` add to (and must not repeat) the spec's ``?`` options."""
    name, model, opts = parse_spec(spec)
    for k, v in options.items():
        if k in opts:
            raise BackendOptionError(f"option {k!r} given both in the spec and as a keyword")
        opts[k] = v
    mode = cache or os.environ.get("WORKBENCH_LLM_CACHE", "readwrite")
    rc = ResponseCache(cache_dir, mode) if mode != "off" else None
    if name == "scripted":
        from .scripted import ScriptedLLM

        return ScriptedLLM(responses if responses is not None else ("",), opts, spec=spec, cache=rc)
    if responses is not None:
        raise BackendOptionError("responses= is only for the scripted backend")
    if name in ("default", "transformers") and not model:  # the embedded model on the transformers engine
        from .hf import TransformersLLM
        from .embedded import EMBEDDED_NAME, embedded_identity, embedded_model_dir

        return TransformersLLM(str(embedded_model_dir()), opts, spec=spec, cache=rc, model_name=EMBEDDED_NAME,
                               identity=embedded_identity())
    if name == "transformers":
        from .hf import TransformersLLM

        return TransformersLLM(model, opts, spec=spec, cache=rc)
    if name == "onnx":
        from .ort_backend import OnnxGenAILLM

        if not model:  # the embedded model on onnxruntime-genai
            from .embedded import EMBEDDED_NAME, ONNX_FORMAT_VERSION, embedded_identity, embedded_onnx_dir

            OnnxGenAILLM.validate_options(opts)  # before any conversion: a bad option fails fast
            return OnnxGenAILLM(str(embedded_onnx_dir()), opts, spec=spec, cache=rc, model_name=EMBEDDED_NAME,
                                identity=f"{embedded_identity()}:onnx-fp32-{ONNX_FORMAT_VERSION}")
        return OnnxGenAILLM(model, opts, spec=spec, cache=rc)
    if name == "vllm":
        from .vllm_backend import VLLMBackend

        return VLLMBackend(model, opts, spec=spec, cache=rc)
    if name == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(model, opts, spec=spec, cache=rc)
    raise UnknownBackendError(name)  # pragma: no cover
