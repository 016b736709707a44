"""The RL loop of :mod:`workbench.kl.rl` on a ``transformers`` causal language model (GPU-ready).

Same task, estimators and update as the tiny-policy runs, with the policy a real causal LM: a prompt
is a short list of token ids (one per task prompt ``c``), a completion is ``L`` tokens drawn from a
fixed set of ``V`` answer tokens (``answer_token_ids``: logits restricted to that set and renormalised,
i.e. constrained decoding), and the reward is :func:`workbench.kl.rl.task_reward` on the answer
indices. Because completions live in ``V^L``, the reverse KL to the reference is tracked exactly by
enumeration when ``exact_kl`` is set.

Full scale (GPU): load e.g. ``Qwen/Qwen2.5-0.5B-Instruct`` twice (policy and frozen reference), pick
``answer_token_ids`` = the ids of the digits "0".."V-1", prompts = tokenised task statements, and call
:func:`run_hf_rl` with ``device="cuda"``. The unit test builds a tiny randomly initialised Llama from a
config (offline) and runs this exact code path.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from workbench.seeding import derive_seed

from .estimators import parse_config, surrogate
from .rl import _loo_mean, task_reward


@dataclass
class HFRLConfig:
    prompt_token_ids: list = field(default_factory=lambda: [[1, 5], [1, 6], [1, 7], [1, 8]])
    """token ids of each task prompt (all the same length); prompt index c is the task target"""
    answer_token_ids: list = field(default_factory=lambda: [10, 11, 12, 13])
    """the V token ids a completion may use (e.g. the digits), index v = answer value v"""
    n_targets: int = 4
    """modulus of the task: reward 1 iff sum_t (t+1) a_t = c (mod n_targets)"""
    completion_len: int = 3
    """L, tokens per completion"""
    kl: str = "k1 in reward"
    """estimator configuration name (workbench.kl.estimators.parse_config) or "none\""""
    beta: float = 0.1
    """KL coefficient"""
    steps: int = 50
    """updates"""
    group: int = 8
    """completions per prompt per update (RLOO group)"""
    lr: float = 1e-5
    """AdamW learning rate"""
    lag: int = 0
    """behaviour policy lags the learner by this many updates (0 = on-policy)"""
    clip_eps: float = 0.2
    """PPO clip of the task term's token ratio"""
    kl_baseline: bool = True
    """leave-one-out baseline on reward-placed estimators"""
    kl_reward_logprobs: str = "behaviour"
    """off-policy: reward-placed estimator from the behaviour policy's log-probs (verl's old_log_probs in async training) or the learner's ("learner")"""
    exact_kl: bool = True
    """track the exact reverse KL to the reference by enumerating the V^L completions"""
    seed: int = 1
    """seed of the sampling generator"""


def completion_logprobs(model, prompts: torch.Tensor, completions: torch.Tensor, answer_ids: torch.Tensor) -> torch.Tensor:
    """log pi(a_t | prompt, a_<t) over the answer-token set: (B, L).

    ``prompts`` (B, Tp) token ids, ``completions`` (B, L) answer *indices* into ``answer_ids`` (V,).
    """
    B, Tp = prompts.shape
    L = completions.shape[1]
    ids = torch.cat([prompts, answer_ids[completions]], dim=1)  # (B, Tp + L)
    logits = model(input_ids=ids).logits[:, Tp - 1: Tp - 1 + L]  # (B, L, vocab): predicts the completion
    lp = torch.log_softmax(logits[..., answer_ids].to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)  # (B, L, V), restricted and renormalised
    return lp.gather(-1, completions[..., None]).squeeze(-1)


@torch.no_grad()
def sample_completions(model, prompts: torch.Tensor, L: int, answer_ids: torch.Tensor,
                       generator: torch.Generator) -> torch.Tensor:
    """Ancestral sampling of (B, L) answer indices (no KV cache: L is small)."""
    ids = prompts
    out = []
    for _ in range(L):
        logits = model(input_ids=ids).logits[:, -1, answer_ids].float()  # (B, V)
        a = torch.multinomial(torch.softmax(logits, -1).cpu(), 1, generator=generator).squeeze(-1).to(ids.device)
        out.append(a)
        ids = torch.cat([ids, answer_ids[a][:, None]], dim=1)
    return torch.stack(out, dim=1)


@torch.no_grad()
def exact_reverse_kl(model, ref_model, prompts: torch.Tensor, L: int, answer_ids: torch.Tensor) -> torch.Tensor:
    """Per-prompt exact KL(pi||ref) over all V^L completions: (P,)."""
    V = answer_ids.numel()
    comp = torch.tensor(list(itertools.product(range(V), repeat=L)), dtype=torch.long, device=prompts.device)  # (N, L)
    kls = []
    for p in prompts:
        pr = p[None].expand(comp.shape[0], -1)
        lp = completion_logprobs(model, pr, comp, answer_ids).sum(-1)
        lr = completion_logprobs(ref_model, pr, comp, answer_ids).sum(-1)
        kls.append((lp.exp() * (lp - lr)).sum())
    return torch.stack(kls)


def run_hf_rl(model, cfg: HFRLConfig, ref_model=None, progress: bool = True) -> dict:
    """Train ``model`` in place; returns per-step ``reward``, ``grad_norm``, ``kl_grad_norm`` and ``exact_kl``."""
    if cfg.group < 2:
        raise ValueError("group must be >= 2")
    if cfg.kl_reward_logprobs not in ("behaviour", "learner"):
        raise ValueError(f"kl_reward_logprobs={cfg.kl_reward_logprobs!r}; choose 'behaviour' or 'learner'")
    if len({len(p) for p in cfg.prompt_token_ids}) != 1:
        raise ValueError("all prompts must have the same number of tokens")
    device = next(model.parameters()).device
    kl_cfg = None if cfg.kl == "none" else parse_config(cfg.kl)
    ref_model = ref_model if ref_model is not None else copy.deepcopy(model)
    ref_model.eval().requires_grad_(False)
    behaviour = copy.deepcopy(model).eval().requires_grad_(False) if cfg.lag > 0 else None
    snapshots = [copy.deepcopy(model.state_dict())] if cfg.lag > 0 else []
    answer = torch.tensor(cfg.answer_token_ids, dtype=torch.long, device=device)
    P = len(cfg.prompt_token_ids)
    prompt_t = torch.tensor(cfg.prompt_token_ids, dtype=torch.long, device=device)  # (P, Tp)
    targets = torch.arange(P, device=device) % cfg.n_targets
    prompts = prompt_t.repeat_interleave(cfg.group, 0)  # (B, Tp)
    tgt = targets.repeat_interleave(cfg.group).cpu()
    B = prompts.shape[0]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "hf-rl", cfg.kl, cfg.lag) % 2**62)
    hist = {"reward": [], "grad_norm": [], "kl_grad_norm": [], "exact_kl": [], "exact_kl_step": []}
    if cfg.exact_kl:
        hist["exact_kl"].append(float(exact_reverse_kl(model, ref_model, prompt_t, cfg.completion_len, answer).mean()))
        hist["exact_kl_step"].append(0)
    for step in tqdm(range(1, cfg.steps + 1), desc=f"HF RL {cfg.kl}", disable=not progress):
        mu_model = model
        if behaviour is not None:
            behaviour.load_state_dict(snapshots[0])
            mu_model = behaviour
        model.eval()
        comp = sample_completions(mu_model, prompts, cfg.completion_len, answer, gen)  # (B, L)
        model.train()
        r = task_reward(tgt, comp.cpu(), cfg.n_targets).to(device)  # (B,)
        A = (r.view(P, -1) - _loo_mean(r.view(P, -1))).view(B)
        lp = completion_logprobs(model, prompts, comp, answer).double()  # (B, L)
        with torch.no_grad():
            lr_ = completion_logprobs(ref_model, prompts, comp, answer).double()
            lm = completion_logprobs(behaviour, prompts, comp, answer).double() if behaviour is not None else None
        rho = torch.exp(lp - (lm if lm is not None else lp.detach()))
        task = -torch.minimum(rho * A[:, None], rho.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * A[:, None]).sum(-1).mean()
        kl_term = lp.new_zeros(())
        if kl_cfg is not None and cfg.beta > 0:
            base = None
            l_rew = lm if (cfg.kl_reward_logprobs == "behaviour" and lm is not None) else lp.detach()
            if cfg.kl_baseline and kl_cfg.placement in ("reward_seq", "loss+reward", "reward_rtg"):
                from .estimators import _reverse_cumsum, kl_estimate
                k = kl_estimate(l_rew, lr_, kl_cfg.estimator, kl_cfg.clamp)
                base = (_loo_mean(_reverse_cumsum(k).view(P, cfg.group, -1)).reshape(B, -1)
                        if kl_cfg.placement == "reward_rtg" else _loo_mean(k.sum(-1).view(P, cfg.group)).view(B))
            kl_term = cfg.beta * surrogate(kl_cfg, lp, lr_, lm, weights=torch.full((B,), 1.0 / B, dtype=lp.dtype,
                                                                                   device=lp.device), baseline=base,
                                        logp_reward=l_rew)
        params = [p for p in model.parameters() if p.requires_grad]
        opt.zero_grad()
        if kl_term.requires_grad:
            kg = torch.autograd.grad(kl_term, params, retain_graph=True, allow_unused=True)
            hist["kl_grad_norm"].append(float(torch.sqrt(sum((g.double() ** 2).sum() for g in kg if g is not None))))
        else:
            hist["kl_grad_norm"].append(0.0)
        (task + kl_term).backward()
        hist["grad_norm"].append(float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params if p.grad is not None))))
        opt.step()
        hist["reward"].append(float(r.mean()))
        if cfg.lag > 0:
            snapshots.append(copy.deepcopy(model.state_dict()))
            if len(snapshots) > cfg.lag + 1:
                snapshots.pop(0)
        if cfg.exact_kl:
            hist["exact_kl"].append(float(exact_reverse_kl(model, ref_model, prompt_t, cfg.completion_len, answer).mean()))
            hist["exact_kl_step"].append(step)
    return hist
