"""torchgfn environments for DEL design: flat and hierarchical action spaces.

A library is built block by block. Every cycle ``c`` must receive exactly ``quotas[c]`` blocks
(a fixed-size library; reconstruction: the paper fixes the number of blocks per cycle) and the exit
action is allowed only once every quota is met. The terminal state's first ``N`` entries are the
library's bit vector over all building blocks (cycle 0's blocks first).

* :class:`FlatDELEnv`: state (N,) bits; actions 0..N-1 add block ``a``, action N exits.
* :class:`HierarchicalDELEnv`: adding a block takes three steps, cycle -> cluster -> block.
  State (N + C + K,) = [bits | pending cycle one-hot (C) | pending cluster one-hot (K)], where K is
  the total number of clusters. Actions 0..N-1 pick a block of the pending cluster, N..N+C-1 pick a
  cycle, N+C..N+C+K-1 pick a cluster of the pending cycle, the last action exits. Action ``j < N+C+K``
  sets state entry ``j``; a block action also clears the pending entries. Backward actions undo the
  last sub-step: a block (clears its bit, restores its cycle and cluster as pending), a cycle, a
  cluster. Clusters come from agglomerative clustering of each cycle's blocks on ECFP4 Jaccard
  distance (:func:`cluster_blocks`).

Both environments compute log R with a :class:`~workbench.del_gflownet.reward.LibraryReward`.
"""
from __future__ import annotations

import numpy as np
import torch
from gfn.actions import Actions
from gfn.env import DiscreteEnv
from gfn.states import DiscreteStates

import gfn

if not gfn.__version__.startswith("2.4"):
    raise ImportError(f"workbench.del_gflownet needs torchgfn 2.4.x, found {gfn.__version__} "
                      "(install with `pip install --no-deps torchgfn==2.4.1`)")


def cluster_blocks(block_smiles: list[str], n_clusters: int, *, linkage: str = "average") -> np.ndarray:
    """Cluster one cycle's blocks: agglomerative clustering on ECFP4 Jaccard (1 - Tanimoto) distance.

    Returns labels (n_blocks,) in 0..n_clusters-1, renumbered by first appearance.
    """
    from sklearn.cluster import AgglomerativeClustering

    from workbench.del_gflownet.models import ecfp, to_mol

    n = len(block_smiles)
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be in 1..{n}, got {n_clusters}")
    if n_clusters == 1:
        return np.zeros(n, dtype=np.int64)
    fp = ecfp([to_mol(s) for s in block_smiles]).astype(bool)  # (n, 2048)
    inter = fp.astype(np.int32) @ fp.T.astype(np.int32)
    cnt = fp.sum(1)
    union = cnt[:, None] + cnt[None, :] - inter
    dist = 1.0 - np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    labels = AgglomerativeClustering(n_clusters=n_clusters, metric="precomputed", linkage=linkage).fit_predict(dist)
    _, first = np.unique(labels, return_index=True)
    remap = {labels[i]: r for r, i in enumerate(sorted(first))}
    return np.array([remap[v] for v in labels], dtype=np.int64)


class _DELBase(DiscreteEnv):
    def __init__(self, sizes: list[int], quotas: list[int], log_reward_fn, state_dim: int, n_actions: int,
                 debug: bool = False):
        if len(sizes) != len(quotas):
            raise ValueError(f"one quota per cycle: {len(sizes)} cycles, {len(quotas)} quotas")
        for c, (n, q) in enumerate(zip(sizes, quotas)):
            if not 1 <= q <= n:
                raise ValueError(f"quota of cycle {c + 1} must be in 1..{n}, got {q}")
        self.sizes, self.quotas = list(sizes), list(quotas)
        self.n_blocks = int(sum(sizes))
        self.n_cycles = len(sizes)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.cycle_of = torch.tensor(np.repeat(np.arange(len(sizes)), sizes), dtype=torch.long)  # (N,)
        # (N, C) one-hot: block -> cycle, to count chosen blocks per cycle with one matmul
        self.cycle_onehot = torch.nn.functional.one_hot(self.cycle_of, len(sizes)).float()
        self.quota_t = torch.tensor(quotas, dtype=torch.float32)
        self.log_reward_fn = log_reward_fn
        super().__init__(n_actions=n_actions, s0=torch.zeros(state_dim), state_shape=(state_dim,), debug=debug)

    def _counts(self, bits: torch.Tensor) -> torch.Tensor:
        return bits @ self.cycle_onehot  # (..., N) -> (..., C)

    def log_reward(self, states: DiscreteStates) -> torch.Tensor:
        return self.log_reward_fn(states.tensor[..., : self.n_blocks])

    def reward(self, states: DiscreteStates) -> torch.Tensor:
        return torch.exp(self.log_reward(states))

    def n_terminating_states_exact(self) -> int:
        from math import comb

        return int(np.prod([comb(n, q) for n, q in zip(self.sizes, self.quotas)]))


class FlatDELEnv(_DELBase):
    """Flat action space: add any block whose cycle is below quota; exit when all quotas are met."""

    def __init__(self, sizes, quotas, log_reward_fn, debug: bool = False):
        n = int(sum(sizes))
        super().__init__(sizes, quotas, log_reward_fn, state_dim=n, n_actions=n + 1, debug=debug)

    def make_states_class(self) -> type[DiscreteStates]:
        env = self

        class FlatStates(DiscreteStates):
            state_shape = env.state_shape
            s0 = env.s0
            sf = env.sf
            make_random_states = env.make_random_states
            n_actions = env.n_actions

            def _compute_forward_masks(self) -> torch.Tensor:
                bits = self.tensor  # (..., N); the sink state holds -inf and is never stepped
                valid = torch.isfinite(bits).all(-1)
                b = torch.where(torch.isfinite(bits), bits, torch.zeros_like(bits))
                counts = env._counts(b)  # (..., C)
                open_cycle = counts < env.quota_t  # (..., C)
                masks = torch.zeros((*self.batch_shape, env.n_actions), dtype=torch.bool, device=self.device)
                masks[..., : env.n_blocks] = (b == 0) & open_cycle[..., env.cycle_of]
                masks[..., -1] = (counts == env.quota_t).all(-1)
                return masks & valid[..., None]

            def _compute_backward_masks(self) -> torch.Tensor:
                bits = self.tensor
                valid = torch.isfinite(bits).all(-1)
                return (bits == 1) & valid[..., None]

        return FlatStates

    def step(self, states: DiscreteStates, actions: Actions) -> DiscreteStates:
        t = states.tensor.clone()  # (B, N)
        t.scatter_(-1, actions.tensor, 1.0)
        return self.States(t)

    def backward_step(self, states: DiscreteStates, actions: Actions) -> DiscreteStates:
        t = states.tensor.clone()
        t.scatter_(-1, actions.tensor, 0.0)
        return self.States(t)


class HierarchicalDELEnv(_DELBase):
    """Hierarchical action space (cycle -> cluster -> block); see the module docstring.

    Args:
        clusters: per cycle, cluster labels of its blocks (local 0..K_c-1).
    """

    def __init__(self, sizes, quotas, clusters: list[np.ndarray], log_reward_fn, debug: bool = False):
        if len(clusters) != len(sizes):
            raise ValueError("need cluster labels for every cycle")
        glob, cluster_cycle, off = [], [], 0
        for c, lab in enumerate(clusters):
            lab = np.asarray(lab, dtype=np.int64)
            if lab.shape != (sizes[c],):
                raise ValueError(f"cycle {c + 1}: {len(lab)} cluster labels for {sizes[c]} blocks")
            k = int(lab.max()) + 1
            if set(lab.tolist()) != set(range(k)):
                raise ValueError(f"cycle {c + 1}: cluster labels must be 0..K-1 without gaps")
            glob.append(lab + off)
            cluster_cycle += [c] * k
            off += k
        n, n_cyc, n_clu = int(sum(sizes)), len(sizes), off
        self.n_clusters = n_clu
        self.cluster_of = torch.tensor(np.concatenate(glob), dtype=torch.long)  # (N,) global cluster id
        self.cluster_cycle = torch.tensor(cluster_cycle, dtype=torch.long)  # (K,)
        self.cluster_onehot = torch.nn.functional.one_hot(self.cluster_of, n_clu).float()  # (N, K)
        self.cluster_size = self.cluster_onehot.sum(0)  # (K,)
        super().__init__(sizes, quotas, log_reward_fn, state_dim=n + n_cyc + n_clu,
                         n_actions=n + n_cyc + n_clu + 1, debug=debug)

    def split(self, t: torch.Tensor):
        n, c = self.n_blocks, self.n_cycles
        return t[..., :n], t[..., n:n + c], t[..., n + c:]

    def make_states_class(self) -> type[DiscreteStates]:
        env = self

        class HierStates(DiscreteStates):
            state_shape = env.state_shape
            s0 = env.s0
            sf = env.sf
            make_random_states = env.make_random_states
            n_actions = env.n_actions

            def _compute_forward_masks(self) -> torch.Tensor:
                raw = self.tensor
                valid = torch.isfinite(raw).all(-1)
                t = torch.where(torch.isfinite(raw), raw, torch.zeros_like(raw))
                bits, cyc, clu = env.split(t)
                counts = env._counts(bits)  # (..., C)
                has_cyc = cyc.sum(-1) > 0
                has_clu = clu.sum(-1) > 0
                phase0 = ~has_cyc
                phase1 = has_cyc & ~has_clu
                phase2 = has_clu
                n, c = env.n_blocks, env.n_cycles
                masks = torch.zeros((*self.batch_shape, env.n_actions), dtype=torch.bool, device=self.device)
                # phase 0: pick a cycle below quota, or exit when all are complete
                masks[..., n:n + c] = phase0[..., None] & (counts < env.quota_t)
                masks[..., -1] = phase0 & (counts == env.quota_t).all(-1)
                # phase 1: a cluster of the pending cycle that still has an unchosen block
                chosen_in_cluster = bits @ env.cluster_onehot  # (..., K)
                clu_ok = (cyc[..., env.cluster_cycle] > 0) & (chosen_in_cluster < env.cluster_size)
                masks[..., n + c:-1] = phase1[..., None] & clu_ok
                # phase 2: an unchosen block of the pending cluster
                masks[..., :n] = phase2[..., None] & (clu[..., env.cluster_of] > 0) & (bits == 0)
                return masks & valid[..., None]

            def _compute_backward_masks(self) -> torch.Tensor:
                raw = self.tensor
                valid = torch.isfinite(raw).all(-1)
                t = torch.where(torch.isfinite(raw), raw, torch.zeros_like(raw))
                bits, cyc, clu = env.split(t)
                has_cyc = cyc.sum(-1) > 0
                has_clu = clu.sum(-1) > 0
                n, c = env.n_blocks, env.n_cycles
                masks = torch.zeros((*self.batch_shape, env.n_actions - 1), dtype=torch.bool, device=self.device)
                masks[..., :n] = (~has_cyc)[..., None] & (bits == 1)  # undo the last block
                masks[..., n:n + c] = (has_cyc & ~has_clu)[..., None] & (cyc == 1)  # undo the cycle pick
                masks[..., n + c:] = has_clu[..., None] & (clu == 1)  # undo the cluster pick
                return masks & valid[..., None]

        return HierStates

    def step(self, states: DiscreteStates, actions: Actions) -> DiscreteStates:
        t = states.tensor.clone()  # (B, D)
        a = actions.tensor  # (B, 1)
        is_block = (a < self.n_blocks).squeeze(-1)
        t[is_block, self.n_blocks:] = 0.0  # a block completes the sub-steps: clear pending
        t.scatter_(-1, a, 1.0)
        return self.States(t)

    def backward_step(self, states: DiscreteStates, actions: Actions) -> DiscreteStates:
        t = states.tensor.clone()
        a = actions.tensor  # (B, 1)
        t.scatter_(-1, a, 0.0)
        is_block = (a < self.n_blocks).squeeze(-1)
        if is_block.any():
            blk = a[is_block, 0]
            rows = torch.nonzero(is_block).squeeze(-1)
            t[rows, self.n_blocks + self.cycle_of[blk]] = 1.0
            t[rows, self.n_blocks + self.n_cycles + self.cluster_of[blk]] = 1.0
        return self.States(t)
