"""``onnx:<dir>`` (and ``onnx``, the embedded model): the same decode loop as the transformers backend, on onnxruntime-genai.

Why: on CPU our transformers loop spends most of each step in PyTorch's per-operator overhead, not in
reading weights; onnxruntime runs the same float32 weights as one fused graph (``benchmarks/
llm_throughput.py`` measures both engines in one run). The model folder is an onnxruntime-genai model
(``genai_config.json`` + ``model.onnx``), as written by ``onnxruntime_genai.models.builder``; the
embedded model is converted once into the user cache (:func:`workbench.llm.embedded.embedded_onnx_dir`).

Only the engine differs: prompts are rendered by the same tokenizer and chat template, and sampling
(per-request seeded generators), structured outputs (xgrammar bitmasks), stop strings, ``max_tokens``,
``ignore_eos`` and log-probabilities are the transformers backend's code
(:meth:`TransformersLLM._decode_batch`). This engine supplies the two steps of that loop:

* prefill: the batch's prompts, right padded (onnxruntime-genai derives the attention mask from the
  padding id and its attention kernel expects right padding; the engine then continues each row from
  its own last prompt token);
* advance: our sampled token for each row is imposed by handing the engine logits that allow that
  token alone, after which it runs the next forward pass. onnxruntime-genai cannot drop finished rows
  from a batch, so they are fed the padding token until the batch ends.

The padding id (the config's ``pad_token_id``, also its end id, so the engine's own end-of-row logic
only ever fires on rows we have finished) is reserved: it is never sampled (its logit is set to -inf
before sampling; for the embedded model it is ``<filename>``, whose probability under the model stayed
below 10^-5.8 at every position measured, so the draw's distribution changes by less than that), and a
prompt that contains it is decoded in a batch of its own, where no mask is derived from padding. Both keep a
request's text independent of its batch partners (tested).

Options: threads (intra-op threads of the onnxruntime session; 0 = onnxruntime's default),
max_batch_size, chat (apply the chat template to string prompts).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .backend import Backend, Request
from .base import BackendOptionError, Completion, MissingExtraError, ModelNotFoundError, SamplingParams
from .hf import TransformersLLM


class OnnxGenAILLM(TransformersLLM):
    name = "onnx"
    accepts_images = False
    OPTIONS = {
        "max_batch_size": (int, 16),
        "chat": (bool, True),
        "threads": (int, 0),
    }

    def __init__(self, model: str, options: dict | None = None, *, spec: str | None = None, cache=None,
                 model_name: str | None = None, identity: str | None = None):
        self._given_identity = identity
        Backend.__init__(self, model, options, spec=spec, cache=cache)
        self.model_name = model_name or model
        o = self.options
        if o["max_batch_size"] < 1:
            raise BackendOptionError("max_batch_size must be >= 1")
        if o["threads"] < 0:
            raise BackendOptionError("threads must be >= 0 (0 = onnxruntime's default)")
        try:
            import numpy as np
            import onnxruntime_genai as og
            import torch
            import transformers
        except ImportError as e:
            raise MissingExtraError(e.name or "onnxruntime-genai", "hf", "the onnx backend") from None
        self._np, self._og, self._torch = np, og, torch
        # onnxruntime-genai accepts batches of at most 32 rows; texts do not depend on batch composition
        self.options["max_batch_size"] = min(o["max_batch_size"], 32)
        self.device = torch.device("cpu")
        d = Path(model).expanduser()
        if not (d / "genai_config.json").exists():
            raise ModelNotFoundError(f"{model!r} is not an onnxruntime-genai model folder (no genai_config.json); "
                                     "build one with `python -m onnxruntime_genai.models.builder -m <hf model> "
                                     "-o <dir> -p fp32 -e cpu`")
        gcfg = json.loads((d / "genai_config.json").read_text())["model"]
        self._vocab = int(gcfg["vocab_size"])
        self._pad = int(gcfg["pad_token_id"])
        self.dtype = "onnx"
        config = og.Config(str(d))
        config.clear_providers()  # CPU
        if o["threads"] > 0:
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {
                "intra_op_num_threads": o["threads"], "inter_op_num_threads": 1}}}}))
        self.engine = og.Model(config)
        transformers.utils.logging.disable_progress_bar()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(d))
        tok = self.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        eos: list = []
        gen = d / "generation_config.json"
        if gen.exists():
            e = json.loads(gen.read_text()).get("eos_token_id")
            eos = e if isinstance(e, list) else [e]
        self.eos_ids = {e for e in eos + [tok.eos_token_id] if e is not None and e != self._pad}
        self.weight_bytes = sum(f.stat().st_size for f in d.glob("model.onnx*"))

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        torch_only = sorted(set(options) & (set(TransformersLLM.OPTIONS) - set(cls.OPTIONS)))
        if torch_only:
            raise BackendOptionError(
                f"option(s) {torch_only} belong to the transformers engine; the onnx engine takes "
                f"{', '.join(sorted(cls.OPTIONS))}. For the embedded model on transformers use the spec "
                f"'default?{torch_only[0]}=...'")
        return super().validate_options(options)

    def cache_options(self) -> dict[str, Any]:
        o = dict(self.options)
        for k in ("max_batch_size", "threads"):
            o.pop(k, None)
        return o

    def _generate(self, requests: list[Request], params: SamplingParams) -> list[Completion]:
        rendered = [self.render(r.prompt) for r in requests]
        alone = [k for k in range(len(requests)) if self._pad in rendered[k]]
        if not alone:
            return super()._generate(requests, params)
        out: list[Completion | None] = [None] * len(requests)
        rest = [k for k in range(len(requests)) if k not in set(alone)]
        for group in [rest] + [[k] for k in alone]:  # prompts holding the padding id: one per batch
            if group:
                for k, c in zip(group, super()._generate([requests[k] for k in group], params)):
                    out[k] = c
        return out  # type: ignore[return-value]

    # ----------------------------------------------------------------------------- engine hooks
    def _logits_width(self) -> int:
        return self._vocab

    def _prefill(self, prompts: list[list[int]]):
        np, og = self._np, self._og
        B, L = len(prompts), max(len(p) for p in prompts)
        ids = np.full((B, L), self._pad, dtype=np.int32)
        for i, p in enumerate(prompts):  # right padding (see the module docstring)
            ids[i, :len(p)] = p
        gp = og.GeneratorParams(self.engine)
        # room for every step the loop may take (the last sampled token is never fed back)
        gp.set_search_options(max_length=L + self._max_tokens + 1, batch_size=B, do_sample=False)
        gen = og.Generator(self.engine, gp)
        gen.append_tokens(ids)
        state = {"gen": gen, "B": B, "active": list(range(B))}
        return state, self._logits(state)

    def _logits(self, state: dict):
        lg = self._np.asarray(state["gen"].get_logits()).reshape(state["B"], -1)
        return self._torch.from_numpy(lg[state["active"]].astype(self._np.float32, copy=True))

    def _advance(self, state: dict, chosen, keep: list[int]):
        np = self._np
        forced = np.full((state["B"], 1, self._vocab), -1e4, dtype=np.float32)
        forced[:, 0, self._pad] = 0.0  # finished rows: padding
        for j in keep:
            row = state["active"][j]
            forced[row, 0, self._pad] = -1e4
            forced[row, 0, int(chosen[j])] = 0.0
        gen = state["gen"]
        gen.set_logits(forced)
        gen.generate_next_token()  # greedy on the imposed logits: takes our token, runs the next pass
        state["active"] = [state["active"][j] for j in keep]
        return self._logits(state)

    def _sample(self, logits, gens, params: SamplingParams):
        logits[:, self._pad] = float("-inf")  # the padding id is reserved (see the module docstring)
        return super()._sample(logits, gens, params)

    def _decode_batch(self, prompts, seeds, params: SamplingParams):
        self._max_tokens = params.max_tokens
        return super()._decode_batch(prompts, seeds, params)
