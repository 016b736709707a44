"""Configuration of the KL-estimators notebook (small CPU defaults)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Config:
    seed: int = 1
    """seed of the experiment (policies, perturbations, Monte Carlo, RL sampling)"""
    V: int = 3
    """vocabulary size of the exact-analysis policies"""
    L: int = 4
    """sequence length of the exact-analysis policies (V^L sequences are enumerated)"""
    ref_scale: float = 1.0
    """standard deviation of the reference policy's random logits / output weights"""
    distance: float = 0.5
    """perturbation scale of pi around ref for the main exact table (pi = ref + distance * N(0, 1))"""
    mlp_hidden: int = 16
    """hidden units of the tiny neural policy in the exact table"""
    behaviour_lag: float = 0.5
    """off-policy exact table: behaviour mu = pi + behaviour_lag * (ref - pi) (a stale policy between ref and pi; reconstruction)"""
    clamp: str = "none"
    """estimator clamping convention in the exact table and RL: none, verl or openrlhf"""
    sweep_distances: tuple = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
    """perturbation scales for the bias-vs-distance sweep and the explorer grid"""
    explorer_V: tuple = (2, 3, 4)
    """vocabulary sizes of the explorer grid (tabular policy)"""
    explorer_L: tuple = (1, 2, 3, 4)
    """lengths of the explorer grid (tabular policy)"""
    mc_ns: tuple = (10, 100, 1000, 10000)
    """Monte Carlo sample sizes for the convergence check"""
    rl_V: int = 4
    """RL task: vocabulary size"""
    rl_L: int = 4
    """RL task: sequence length"""
    n_prompts: int = 6
    """RL task: number of prompts (targets of sum_t (t+1) y_t mod n_prompts)"""
    n_heldout: int = 2
    """RL task: the last n_heldout prompts are held out of training (out-of-domain evaluation)"""
    rl_hidden: int = 32
    """hidden units of the RL policy"""
    ref_accuracy: float = 0.35
    """mean accuracy at which the reference's supervised pre-training stops"""
    rl_steps: int = 100
    """RL updates per run"""
    group: int = 8
    """samples per prompt per update (RLOO group)"""
    lr: float = 0.01
    """Adam learning rate of the RL runs"""
    beta: float = 0.2
    """KL coefficient of the RL runs"""
    lag: int = 4
    """off-policy runs: behaviour policy lags the learner by this many updates"""
    clip_eps: float = 0.2
    """PPO clip range of the task term's token ratio (inactive on-policy)"""
    kl_baseline: bool = True
    """subtract the leave-one-out group mean from reward-placed estimators (= KL folded into the RLOO reward before the baseline, as verl does; OpenRLHF baselines the task reward only: False)"""
    kl_reward_logprobs: str = "behaviour"
    """off-policy RL: log-probs of the reward-placed estimator: "behaviour" (the lagged sampler's, = verl's old_log_probs in its asynchronous trainer) or "learner" (current policy, detached)"""
    eval_every: int = 10
    """exact evaluation period (updates)"""
    diverge_kl: float = 5.0
    """a run counts as diverged when the exact train KL exceeds this (nats) or turns non-finite"""
    collapse_entropy: float = 0.05
    """a run counts as collapsed when the mean sequence entropy falls below this (nats)"""
    rl_configs: tuple = ("none", "k1 in reward", "k1 in loss", "k2 in loss", "k3 in loss", "k3 in reward",
                         "k3 in loss+reward")
    """configurations of the on-policy RL runs ("none" = beta 0)"""
    rl_offpolicy_configs: tuple = ("none", "k1 in reward", "k1 in reward [sequence IS]", "k3 in loss",
                                   "k3 in loss+reward [sequence IS]")
    """configurations of the off-policy (lagged behaviour) RL runs"""
    torch_threads: int = 1
    """torch intra-op threads during run() (tiny tensors: 1 is fastest; restored afterwards)"""
