"""Per-molecule scores and the library reward R(x) = exp(beta / |L(x)| * sum_{m in L(x)} p(m)).

A library ``x`` is a binary vector over all building blocks (cycle 0's blocks first, then cycle 1's,
...), shape (N,). ``L(x)`` is the set of products of one chosen block per cycle. Libraries larger
than ``max_products`` are scored on a uniform sample of ``max_products`` block tuples; the sample is
seeded from the library itself, so R(x) is a deterministic function of x (reconstruction: the paper
says the reward uses the enumerated or a sampled library but not how the sample is drawn).

Products whose synthesis fails (no product from a template) are left out of ``L(x)`` by default
(``failure_policy="exclude"``) or scored 0 (``"zero"``); their count is reported either way.

Scorers map block tuples to p in [0, 1]:

* :class:`ModelScorer`: enumerate the product with RDKit, then the PPI classifier; keeps a
  per-molecule cache keyed by the block tuple (``cache=False`` is the benchmark's uncached
  baseline, which re-enumerates and re-scores every time).
* :class:`TableScorer`: p read from a dense array (toy libraries with a known answer).
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from workbench.seeding import derive_seed


class TableScorer:
    """p from an array of shape (n_blocks_cycle_0, n_blocks_cycle_1, ...); NaN marks a failure."""

    def __init__(self, table: np.ndarray):
        self.table = np.asarray(table, dtype=np.float64)
        self.n_evaluations = 0

    def score_tuples(self, tuples: np.ndarray) -> np.ndarray:
        """p for each row of ``tuples`` (M, n_cycles) -> (M,)."""
        tuples = np.asarray(tuples, dtype=np.int64).reshape(-1, self.table.ndim)
        self.n_evaluations += len(tuples)
        return self.table[tuple(tuples.T)]


class ModelScorer:
    """p(product of a block tuple) from a fitted :class:`~workbench.del_gflownet.models.PPIModel`.

    Args:
        enumerator: a :class:`~workbench.del_gflownet.reactions.LibraryEnumerator`.
        model: anything with ``predict_proba(list of RDKit mols) -> (N,)``.
        cache: keep a tuple -> p cache (per-molecule score cache).
    """

    def __init__(self, enumerator, model, *, cache: bool = True):
        self.enumerator, self.model, self.cache = enumerator, model, cache
        self._p: dict[tuple[int, ...], float] = {}
        self.n_evaluations = 0  # tuples asked for
        self.n_model_molecules = 0  # molecules actually sent to the model
        self.n_failures_seen = 0

    def score_tuples(self, tuples: np.ndarray) -> np.ndarray:
        """p for each row of ``tuples`` (M, n_cycles) -> (M,), NaN where synthesis fails."""
        from workbench.del_gflownet.models import to_mol

        tuples = np.asarray(tuples, dtype=np.int64)
        keys = [tuple(int(v) for v in row) for row in tuples]
        self.n_evaluations += len(keys)
        todo = [k for k in dict.fromkeys(keys) if not (self.cache and k in self._p)]
        if todo:
            smiles = [self.enumerator.product(k) for k in todo]
            ok = [i for i, s in enumerate(smiles) if s is not None]
            p_new = np.full(len(todo), np.nan)
            if ok:
                p_new[ok] = self.model.predict_proba([to_mol(smiles[i]) for i in ok])
            self.n_model_molecules += len(ok)
            self.n_failures_seen += len(todo) - len(ok)
            fresh = dict(zip(todo, p_new.tolist()))
            if self.cache:
                self._p.update(fresh)
        else:
            fresh = {}
        src = self._p if self.cache else fresh
        return np.array([src[k] for k in keys], dtype=np.float64)


class LibraryReward:
    """R(x) for libraries given as bit vectors over all blocks.

    Args:
        scorer: a scorer with ``score_tuples``.
        sizes: number of blocks per cycle, e.g. ``[24, 24, 24]``.
        beta: the reward exponent's scale.
        max_products: score at most this many products per library (sampled, seeded by x).
        failure_policy: ``"exclude"`` failed products from L(x), or score them ``"zero"``.
        seed: seed of the product sampling.
    """

    def __init__(self, scorer, sizes: list[int], beta: float, *, max_products: int = 1000,
                 failure_policy: str = "exclude", seed: int = 0):
        if failure_policy not in ("exclude", "zero"):
            raise ValueError(f"failure_policy must be 'exclude' or 'zero', got {failure_policy!r}")
        if max_products < 1:
            raise ValueError("max_products must be >= 1")
        self.scorer, self.sizes, self.beta = scorer, list(sizes), float(beta)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.max_products, self.failure_policy, self.seed = max_products, failure_policy, seed
        self.n_failed_products = 0  # over all libraries scored
        self.n_library_calls = 0  # libraries whose reward was asked for (the budget's unit)

    @property
    def n_blocks(self) -> int:
        return int(self.offsets[-1])

    def selection(self, bits) -> list[list[int]]:
        """Chosen block indices per cycle (local indices) of one bit vector (N,)."""
        b = np.asarray(bits).astype(bool)
        if b.shape != (self.n_blocks,):
            raise ValueError(f"library bit vector must have shape ({self.n_blocks},), got {b.shape}")
        return [list(np.flatnonzero(b[self.offsets[c]:self.offsets[c + 1]])) for c in range(len(self.sizes))]

    def products(self, bits) -> np.ndarray:
        """Block tuples of L(x) (all, or a sample of ``max_products``), shape (M, n_cycles)."""
        sel = self.selection(bits)
        if any(len(s) == 0 for s in sel):
            return np.zeros((0, len(self.sizes)), dtype=np.int64)
        n = int(np.prod([len(s) for s in sel]))
        if n <= self.max_products:
            return np.array(list(itertools.product(*sel)), dtype=np.int64).reshape(n, len(sel))
        key = "".join("1" if v else "0" for v in np.asarray(bits).astype(bool))
        rng = np.random.default_rng(derive_seed(self.seed, "library_sample", key))
        flat = rng.choice(n, size=self.max_products, replace=False)
        idx = np.stack(np.unravel_index(flat, [len(s) for s in sel]), axis=1)  # (M, C)
        return np.stack([np.asarray(sel[c])[idx[:, c]] for c in range(len(sel))], axis=1)

    def molecule_scores(self, bits_batch) -> list[np.ndarray]:
        """p over each library's (sampled) products; NaN entries are failed syntheses."""
        bits_batch = np.asarray(bits_batch)
        self.n_library_calls += len(bits_batch)
        prods = [self.products(b) for b in bits_batch]
        lens = [len(p) for p in prods]
        allp = self.scorer.score_tuples(np.concatenate(prods)) if sum(lens) else np.zeros(0)
        return list(np.split(allp, np.cumsum(lens)[:-1]))

    def mean_p(self, bits_batch) -> np.ndarray:
        """(1/|L(x)|) sum p over each library, shape (B,)."""
        out = []
        for p in self.molecule_scores(bits_batch):
            fail = np.isnan(p)
            self.n_failed_products += int(fail.sum())
            if self.failure_policy == "zero":
                p = np.where(fail, 0.0, p)
            else:
                p = p[~fail]
            out.append(float(p.mean()) if len(p) else 0.0)
        return np.array(out)

    def log_reward(self, bits_batch) -> np.ndarray:
        """log R(x) = beta * mean p, shape (B,)."""
        return self.beta * self.mean_p(bits_batch)

    def log_reward_torch(self, bits: torch.Tensor) -> torch.Tensor:
        """log R for a (B, N) float tensor of bit vectors -> (B,) float tensor."""
        lr = self.log_reward(bits.detach().cpu().numpy() > 0.5)
        return torch.as_tensor(lr, dtype=torch.get_default_dtype(), device=bits.device)
