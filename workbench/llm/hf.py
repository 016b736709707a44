"""``transformers:<dir or hub id>`` (and ``default``): batched generation on any causal LM.

Why our own decoding loop instead of ``model.generate``: each request must draw from its own seeded
generator so that its text does not depend on which batch it rode in (``generate`` has one global
generator per call), and we want raw token log-probabilities and stop strings on the same pass. The
loop is the standard one (left padding, KV cache, per-row sampling with temperature and top-p); its
greedy path is checked against ``model.generate`` in the tests.

Options (``?key=value``): dtype (auto|bfloat16|float16|float32), device (cpu|cuda|auto),
max_batch_size, chat (apply the chat template to string prompts), trust_remote_code, threads
(torch CPU threads, 0 = leave as is), gguf_file (load a GGUF file from the model dir).

Text only: a prompt holding an image part raises :class:`~workbench.llm.base.ImageInputError` (which
names the vision-capable backends) before anything runs; chats whose parts are all text are joined
into plain strings for the chat template.

``logprobs`` are the model's raw log-probabilities of the chosen tokens (temperature 1, no top-p),
as vLLM reports them by default. ``latency_s`` is the wall time of the batch the request rode in.
Requests are sorted by prompt length and cut into batches of ``max_batch_size``; finished rows are
dropped from the batch as they end.

Structured outputs (``SamplingParams.structure``, :mod:`workbench.llm.structure`): xgrammar inside
this loop. Each (tokenizer, structure) is compiled once per backend and cached; each row gets its
own ``GrammarMatcher``; before sampling, the rows' token bitmasks set disallowed logits to -inf (so
temperature, top-p and the per-request generators work on the constrained distribution, and a
request's text still does not depend on its batch). A row ends with ``finish_reason="stop"`` when its
matcher accepts an end-of-sequence token or when the structure allows nothing but end-of-sequence
next (that final token is counted, not computed); a row that reaches ``max_tokens`` inside the
structure ends with ``"length"``. ``logprobs`` stay the model's raw log-probabilities, as above.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from .backend import Backend, Request
from .base import (BackendOptionError, Completion, MissingExtraError, ModelNotFoundError, SamplingParams,
                   apply_stop, text_only_chat)


class TransformersLLM(Backend):
    name = "transformers"
    accepts_images = False  # AutoModelForCausalLM + tokenizer: no image processor on this path
    OPTIONS = {
        "dtype": (str, "auto"),
        "device": (str, "auto"),
        "max_batch_size": (int, 16),
        "chat": (bool, True),
        "trust_remote_code": (bool, False),
        "threads": (int, 0),
        "gguf_file": (str, ""),
    }

    def __init__(self, model: str, options: dict | None = None, *, spec: str | None = None, cache=None,
                 model_name: str | None = None, identity: str | None = None):
        self._given_identity = identity  # known content identity (the embedded model: its GGUF digest)
        super().__init__(model, options, spec=spec, cache=cache)  # hashes a local model folder (identity)
        self.model_name = model_name or model
        o = self.options
        if o["dtype"] not in ("auto", "bfloat16", "float16", "float32"):
            raise BackendOptionError(f"dtype must be auto|bfloat16|float16|float32, got {o['dtype']!r}")
        if o["max_batch_size"] < 1:
            raise BackendOptionError("max_batch_size must be >= 1")
        try:
            import torch
            import transformers
        except ImportError as e:
            raise MissingExtraError(e.name or "transformers", "hf", "the transformers backend") from None
        self._torch = torch
        if o["threads"] > 0:
            torch.set_num_threads(o["threads"])
        dev = o["device"]
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(dev)
        if o["dtype"] == "auto":
            dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        else:
            dtype = getattr(torch, o["dtype"])
        kw: dict[str, Any] = {"trust_remote_code": o["trust_remote_code"]}
        if o["gguf_file"]:
            kw["gguf_file"] = o["gguf_file"]
        local = Path(model).expanduser()
        if not local.exists() and (model.startswith((".", "/", "~")) or os.sep in model and model.count("/") > 1):
            raise ModelNotFoundError(f"model directory {model!r} does not exist")
        transformers.utils.logging.disable_progress_bar()  # no weight-loading bars in notebooks
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(local) if local.exists() else model, **kw)
            self.lm = transformers.AutoModelForCausalLM.from_pretrained(
                str(local) if local.exists() else model, dtype=dtype, **kw).to(self.device)
        except OSError as e:
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
            hint = (" HF_HUB_OFFLINE is set, so nothing is downloaded: fetch the model once with network "
                    "(`huggingface-cli download <id>`) or point the spec at a local directory."
                    if offline else "")
            raise ModelNotFoundError(f"could not load model {model!r}: {str(e).splitlines()[0]}.{hint}") from None
        self.lm.eval()
        if self._identity is None:  # a hub id: the commit transformers resolved and loaded
            commit = getattr(self.lm.config, "_commit_hash", None)
            self._identity = f"hub:{model}@{commit}" if commit else None
        self.dtype = dtype
        tok = self.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        eos = self.lm.generation_config.eos_token_id if self.lm.generation_config is not None else None
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {e for e in eos + [tok.eos_token_id] if e is not None}

    def model_identity(self) -> str | None:
        return self._given_identity or super().model_identity()

    def cache_options(self) -> dict[str, Any]:
        o = dict(self.options)
        for k in ("max_batch_size", "threads", "device"):
            o.pop(k, None)
        return o

    # ----------------------------------------------------------------------------- prompts
    def render(self, prompt) -> list[int]:
        """Token ids of a prompt: chat template for chats (and strings when chat=true)."""
        tok = self.tokenizer
        chat = text_only_chat(prompt, self.spec, self.model_name)  # raises ImageInputError on an image part
        if (not isinstance(prompt, str) or self.options["chat"]) and tok.chat_template:
            ids = tok.apply_chat_template(chat, tokenize=True, add_generation_prompt=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        if not isinstance(prompt, str):
            prompt = "\n".join(f"{m['role']}: {m['content']}" for m in chat) + "\nassistant:"
        return tok(prompt, add_special_tokens=True)["input_ids"]

    # ----------------------------------------------------------------------------- decoding
    def _generate(self, requests: list[Request], params: SamplingParams) -> list[Completion]:
        rendered = [self.render(r.prompt) for r in requests]
        order = sorted(range(len(requests)), key=lambda k: len(rendered[k]))
        out: list[Completion | None] = [None] * len(requests)
        bs = self.options["max_batch_size"]
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            comps = self._decode_batch([rendered[k] for k in idx], [requests[k].seed for k in idx], params)
            for k, c in zip(idx, comps):
                out[k] = c
        return out  # type: ignore[return-value]

    # ----------------------------------------------------------------------------- structures
    def _compiled(self, structure):
        """The structure compiled for this tokenizer (xgrammar), once per backend."""
        cache = self.__dict__.setdefault("_compiled_structures", {})
        if structure not in cache:
            try:
                import xgrammar as xgr
            except ImportError:
                raise MissingExtraError("xgrammar", "hf", "structured outputs on the transformers backend") from None
            if getattr(self, "_xgr_compiler", None) is None:
                vocab = self._logits_width()
                info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=vocab,
                                                          stop_token_ids=sorted(self.eos_ids))
                self._xgr_compiler = xgr.GrammarCompiler(info, max_threads=1)
                self._xgr_vocab = vocab
                nonstop = xgr.allocate_token_bitmask(1, vocab)[0]  # every bit set: all tokens allowed
                for t in self.eos_ids:  # the stop tokens' bits cleared: "anything but a stop token"
                    if t < vocab:
                        nonstop[t // 32] &= ~(1 << (t % 32))
                self._xgr_nonstop = nonstop
            cache[structure] = self._xgr_compiler.compile_grammar(structure.xgrammar())
        return cache[structure]

    def _decode_batch(self, prompts: list[list[int]], seeds: list[int | None], params: SamplingParams):
        torch = self._torch
        matchers = bitmask = None
        if params.structure is not None:
            import xgrammar as xgr

            compiled = self._compiled(params.structure)
            matchers = [xgr.GrammarMatcher(compiled) for _ in prompts]
            bitmask = xgr.allocate_token_bitmask(len(prompts), self._xgr_vocab)  # (B, ceil(V/32)) int32
            for r, m in enumerate(matchers):
                m.fill_next_token_bitmask(bitmask, r)
        t0 = time.perf_counter()
        B = len(prompts)
        gens = []
        for s in seeds:
            g = torch.Generator(device="cpu")
            g.manual_seed(s if s is not None else random.getrandbits(63))
            gens.append(g)
        new_tokens: list[list[int]] = [[] for _ in range(B)]
        logps: list[list[float]] = [[] for _ in range(B)]
        finish = ["length"] * B
        texts: list[str | None] = [None] * B
        active = list(range(B))  # rows of the original batch still decoding, in cache order
        with torch.inference_mode():
            state, logits = self._prefill(prompts)  # logits: (B_active, V) float, next-token scores
            for step in range(params.max_tokens):
                logp = torch.log_softmax(logits, dim=-1)  # raw model log-probs
                if matchers is not None:  # disallowed tokens -> -inf, per row (rows in cache order)
                    xgr.apply_token_bitmask_inplace(logits, bitmask[active].to(logits.device),
                                                    vocab_size=self._xgr_vocab)
                chosen = self._sample(logits, [gens[r] for r in active], params)  # (B_active,)
                keep = []
                for j, r in enumerate(active):
                    t = int(chosen[j])
                    if t in self.eos_ids and (not params.ignore_eos or matchers is not None):
                        finish[r] = "stop"  # under a structure, EOS is only allowed where it is complete
                        continue
                    new_tokens[r].append(t)
                    logps[r].append(float(logp[j, t]))
                    if matchers is not None:
                        if not matchers[r].accept_token(t):
                            raise RuntimeError(f"xgrammar rejected token {t} it had allowed (structure "
                                               f"{params.structure.describe()})")
                        if matchers[r].is_terminated():
                            finish[r] = "stop"
                            continue
                        matchers[r].fill_next_token_bitmask(bitmask, r)
                    if params.stop:
                        text = self.tokenizer.decode(new_tokens[r], skip_special_tokens=True)
                        cut, stopped = apply_stop(text, params.stop)
                        if stopped:
                            finish[r], texts[r] = "stop", cut
                            continue
                    if matchers is not None and not bool((bitmask[r] & self._xgr_nonstop).any()):
                        # complete, and nothing but end-of-sequence may follow: that token is certain,
                        # so the row ends here (counted like a sampled EOS) without another forward pass
                        finish[r] = "stop"
                        continue
                    keep.append(j)
                if not keep or step == params.max_tokens - 1:
                    break
                logits = self._advance(state, chosen, keep)
                if len(keep) < len(active):
                    active = [active[j] for j in keep]
        dt = time.perf_counter() - t0
        comps = []
        for r in range(B):
            text = texts[r] if texts[r] is not None else self.tokenizer.decode(new_tokens[r], skip_special_tokens=True)
            comps.append(Completion(
                text=text, prompt_tokens=len(prompts[r]), completion_tokens=len(new_tokens[r]) + (finish[r] == "stop" and texts[r] is None),
                finish_reason=finish[r], latency_s=dt,
                logprobs=logps[r] if params.logprobs else None,
                tokens=[self.tokenizer.decode([t]) for t in new_tokens[r]] if params.logprobs else None,
                meta={"seed_used": seeds[r]}))
        return comps

    # ----------------------------------------------------------------------------- engine hooks
    # The decode loop above is engine-independent: sampling, structures, stops and bookkeeping live
    # there; an engine supplies these two steps (the onnxruntime-genai backend overrides them).
    def _logits_width(self) -> int:
        """Width of the model's logits (may exceed the tokenizer's vocabulary)."""
        out_emb = self.lm.get_output_embeddings()
        return out_emb.weight.shape[0] if out_emb is not None else self.lm.config.vocab_size

    def _prefill(self, prompts: list[list[int]]):
        """Run the prompts (left padded); return (state, next-token logits (B, V) float32)."""
        torch, dev = self._torch, self.device
        B, L = len(prompts), max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((B, L), pad, dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding
            ids[i, L - len(p):] = torch.tensor(p)
            mask[i, L - len(p):] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        outp = self.lm(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        state = {"past": outp.past_key_values, "mask": mask, "last_pos": pos[:, -1]}
        return state, outp.logits[:, -1, :].float()

    def _advance(self, state: dict, chosen, keep: list[int]):
        """Feed each kept row its chosen token (``keep`` indexes the current active rows, ``chosen``
        holds one token per current active row); return the kept rows' next-token logits."""
        torch, dev = self._torch, self.device
        mask, last_pos, past = state["mask"], state["last_pos"], state["past"]
        if len(keep) < len(chosen):  # drop finished rows from the batch and the cache
            sel = torch.tensor(keep, device=dev)
            past.batch_select_indices(sel)
            mask, last_pos, chosen = mask[sel], last_pos[sel], chosen[sel]
        mask = torch.cat([mask, torch.ones((len(keep), 1), dtype=mask.dtype, device=dev)], dim=1)
        last_pos = last_pos + 1
        outp = self.lm(input_ids=chosen[:, None].to(dev), attention_mask=mask,
                       position_ids=last_pos[:, None], past_key_values=past, use_cache=True)
        state.update(past=outp.past_key_values, mask=mask, last_pos=last_pos)
        return outp.logits[:, -1, :].float()

    def _sample(self, logits, gens, params: SamplingParams):
        torch = self._torch
        if params.temperature == 0:
            return logits.argmax(-1).cpu()
        probs = torch.softmax(logits / params.temperature, dim=-1).cpu()
        if params.top_p < 1.0:
            sp, si = probs.sort(dim=-1, descending=True)
            csum = sp.cumsum(-1)
            sp[(csum - sp) >= params.top_p] = 0.0  # keep the smallest prefix with mass >= top_p
            probs = torch.zeros_like(probs).scatter_(-1, si, sp)
        return torch.stack([torch.multinomial(probs[j], 1, generator=g)[0] for j, g in enumerate(gens)])
