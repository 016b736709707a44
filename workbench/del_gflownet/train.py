"""GFlowNet training on the DEL environments with torchgfn: trajectory balance (TB) and detailed
balance (DB), a uniform backward policy, and an exact terminal distribution for small libraries.

Randomness: sampling uses torch's generator inside ``torch.random.fork_rng`` seeded from the
caller's seed, so a run is reproducible and the global generator is left untouched.
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import torch
from gfn.estimators import DiscretePolicyEstimator, ScalarEstimator
from gfn.gflownet import DBGFlowNet, TBGFlowNet
from gfn.preprocessors import IdentityPreprocessor
from gfn.utils.modules import MLP
from tqdm.auto import tqdm

from workbench.seeding import derive_seed

OBJECTIVES = ("tb", "db")


def build_gflownet(env, objective: str = "tb", *, hidden: int = 128, n_layers: int = 2, init_logz: float = 0.0):
    """A TB or DB GFlowNet with an MLP forward policy and a uniform backward policy."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    dim = env.state_shape[0]
    pre = IdentityPreprocessor(output_dim=dim)
    pf = DiscretePolicyEstimator(MLP(dim, env.n_actions, hidden_dim=hidden, n_hidden_layers=n_layers),
                                 env.n_actions, preprocessor=pre, is_backward=False)
    pb = DiscretePolicyEstimator.uniform(env.n_actions, preprocessor=pre)
    if objective == "tb":
        return TBGFlowNet(pf=pf, pb=pb, init_logZ=init_logz)
    logf = ScalarEstimator(MLP(dim, 1, hidden_dim=hidden, n_hidden_layers=n_layers), preprocessor=pre)
    return DBGFlowNet(pf=pf, pb=pb, logF=logf)


def train_gflownet(env, gfn_model, *, n_iterations: int, batch_size: int, lr: float = 1e-3,
                   lr_logz: float = 1e-1, epsilon: float = 0.0, seed: int = 0, progress: bool = True,
                   desc: str = "GFlowNet") -> dict:
    """Train on-policy (optionally epsilon-greedy off-policy). Returns per-iteration ``loss``,
    ``mean_log_reward`` of the sampled batch, ``log_z`` (TB only) and ``seconds``."""
    if n_iterations < 1 or batch_size < 1:
        raise ValueError("n_iterations and batch_size must be >= 1")
    params = [{"params": gfn_model.pf_pb_parameters(), "lr": lr}]
    if isinstance(gfn_model, TBGFlowNet):
        params.append({"params": gfn_model.logz_parameters(), "lr": lr_logz})
    else:
        params.append({"params": gfn_model.logF_parameters(), "lr": lr})
    opt = torch.optim.Adam(params)
    hist = {"loss": [], "mean_log_reward": [], "log_z": []}
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "gflownet_train"))
        for _ in tqdm(range(n_iterations), desc=desc, disable=not progress, leave=False):
            off_policy = epsilon > 0
            traj = gfn_model.sample_trajectories(env, n=batch_size, save_logprobs=not off_policy,
                                                 save_estimator_outputs=False, epsilon=epsilon)
            # read the terminal rewards once, before the conversion: DB's transitions then carry them
            # instead of asking the reward again (one reward call per trajectory for TB and DB alike)
            log_rewards = traj.log_rewards
            samples = gfn_model.to_training_samples(traj)
            opt.zero_grad()
            loss = gfn_model.loss(env, samples, recalculate_all_logprobs=off_policy)
            loss.backward()
            opt.step()
            hist["loss"].append(float(loss.detach()))
            hist["mean_log_reward"].append(float(log_rewards.mean()))
            if isinstance(gfn_model, TBGFlowNet):
                hist["log_z"].append(float(gfn_model.logZ.detach()))
    hist["seconds"] = time.perf_counter() - t0
    return hist


@torch.no_grad()
def sample_libraries(env, gfn_model, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` terminal libraries from the trained forward policy, bit vectors (n, N) bool."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "gflownet_sample"))
        traj = gfn_model.sample_trajectories(env, n=n)
    term = traj.terminating_states.tensor[..., : env.n_blocks]
    return (term > 0.5).cpu().numpy()


@torch.no_grad()
def exact_terminal_distribution(env, pf_estimator, max_states: int = 200_000) -> dict[tuple, float]:
    """P_T(x) of the forward policy by dynamic programming over the state DAG (small envs only).

    Propagates probability mass layer by layer from s0; returns {bits tuple: probability}.
    """
    frontier = {tuple(env.s0.tolist()): 1.0}
    terminal: dict[tuple, float] = {}
    seen = 0
    while frontier:
        keys = list(frontier)
        seen += len(keys)
        if seen > max_states:
            raise ValueError(f"more than {max_states} states: too large for exact enumeration")
        mass = torch.tensor([frontier[k] for k in keys], dtype=torch.float64)
        states = env.states_from_tensor(torch.tensor(keys, dtype=env.s0.dtype))
        out = pf_estimator(states)
        probs = pf_estimator.to_probability_distribution(states, out).probs.double()  # (B, A)
        nxt: dict[tuple, float] = {}
        for a in range(env.n_actions):
            rows = torch.nonzero(states.forward_masks[:, a]).squeeze(-1)
            if len(rows) == 0:
                continue
            w = (mass[rows] * probs[rows, a]).tolist()
            if a == env.n_actions - 1:
                for r, wi in zip(rows.tolist(), w):
                    bits = tuple(int(v) for v in keys[r][: env.n_blocks])
                    terminal[bits] = terminal.get(bits, 0.0) + wi
                continue
            acts = env.actions_from_tensor(torch.full((len(rows), 1), a, dtype=torch.long))
            new = env.step(states[rows], acts).tensor.tolist()
            for s, wi in zip(new, w):
                k = tuple(s)
                nxt[k] = nxt.get(k, 0.0) + wi
        frontier = nxt
    return terminal


def all_libraries(sizes: list[int], quotas: list[int]) -> np.ndarray:
    """Every library with exactly ``quotas[c]`` blocks in cycle ``c``, bit vectors (M, N) bool."""
    per_cycle = [list(itertools.combinations(range(n), q)) for n, q in zip(sizes, quotas)]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for combo in itertools.product(*per_cycle):
        b = np.zeros(int(offsets[-1]), dtype=bool)
        for c, idx in enumerate(combo):
            b[offsets[c] + np.array(idx, dtype=int)] = True
        out.append(b)
    return np.array(out)


def distribution_distances(p: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """L1 distance and Jensen-Shannon divergence (nats) between two distributions on the same support.

    >>> distribution_distances(np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    {'l1': 0.0, 'js': 0.0}
    """
    p = np.asarray(p, float) / np.sum(p)
    q = np.asarray(q, float) / np.sum(q)
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / b[nz])))

    return {"l1": float(np.abs(p - q).sum()), "js": 0.5 * kl(p, m) + 0.5 * kl(q, m)}
