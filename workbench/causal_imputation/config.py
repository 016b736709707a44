"""Configuration for the causal imputation notebook (small CPU defaults)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Config:
    seed: int = 0
    """seed of the experiment (data, masks, PARAFAC initialisation)"""
    models: tuple[str, ...] = ("si_action", "si_context", "gsi", "cp")
    """latent factor models to generate data from (see generators.MODELS)"""
    n_contexts: int = 30
    """number of contexts (e.g. cell types)"""
    n_actions: int = 30
    """number of actions (e.g. compounds); action 0 is the control"""
    n_features: int = 50
    """number of outcome features (e.g. landmark genes)"""
    rank_action: int = 2
    """latent rank r of the action factors v_a (SI-A part)"""
    rank_context: int = 2
    """latent rank s of the context factors z_c (SI-C part)"""
    noise: float = 0.1
    """standard deviation of Gaussian noise on measured outcomes (scores use the noise-free truth)"""
    pattern: str = "block"
    """sparsity pattern: random, block (a few fully measured contexts) or full (leave-one-out)"""
    observed_frac: float = 0.3
    """probability that a pair outside the full contexts is measured"""
    n_full_contexts: int = 6
    """contexts measured under every action (block pattern)"""
    estimators: tuple[str, ...] = ("si_a", "si_c", "gsi", "mean_over_actions", "mean_over_contexts", "two_way",
                                   "fixed_effect", "parafac")
    """estimators to run (see estimators.ESTIMATORS)"""
    eval_mode: str = "heldout"
    """heldout: score every unmeasured pair against the truth; loo: leave each measured pair out"""
    num_donors: int | None = 10
    """SI: keep adding donors while fewer than this, even if the training set shrinks (None: no limit)"""
    si_energy: float = 1.0
    """SI: energy fraction kept by hard singular value thresholding (1.0 = plain least squares)"""
    rcond: float = 1e-6
    """relative singular value cutoff of the least-squares solves"""
    gsi_num_donors: int | None = 4
    """GSI: donor search target (as num_donors) -- reconstruction"""
    gsi_max_donor_actions: int = 10
    """GSI: at most this many donor actions -- reconstruction"""
    gsi_max_donor_contexts: int = 10
    """GSI: at most this many donor contexts (first by label) -- reconstruction"""
    gsi_energy: float = 0.99
    """GSI: energy fraction defining the span of the feature slices where their spectrum has no exact gap
    (noisy data; 1.0 = numerical rank, which on noisy data leaves no complement and falls back to SI-A); an
    exact gap (singular values below rcond times the largest, noise-free data) sets the rank whatever this
    is, so noise-free identified pairs stay exact -- reconstruction"""
    gsi_ranks: tuple[int, int] | None = None
    """GSI: known latent ranks (r, s) instead of the energy rule -- reconstruction"""
    gsi_min_leverage: float = 0.02
    """GSI: a side (null space estimate or exact relation) whose target leverage is at most this is not used,
    and the pair falls back to SI-A when no path is left (caps the weights' squared norm at 1/leverage - 1)
    -- reconstruction"""
    gsi_tol: float = 1e-6
    """GSI: relative spectral tolerance: singular values up to this times the largest count as zero in the
    exact one-sided relations, and the partial trace's normalised eigenvalues must lie this close to 0 or 1
    for the two-sided path to count as exact -- reconstruction"""
    two_way: str = "average"
    """two-way mean: average of context and action means (public code) or additive"""
    parafac_rank: int = 6
    """CP rank of the PARAFAC completion baseline"""
    parafac_iters: int = 100
    """maximum ALS iterations of PARAFAC"""
    sweep_fracs: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7)
    """observed fractions of the sparsity sweep (on the gsi model)"""
    sweep_patterns: tuple[str, ...] = ("block", "random")
    """sparsity patterns of the sweep (block keeps n_full_contexts fully measured contexts)"""
    sweep_estimators: tuple[str, ...] = ("si_a", "si_c", "gsi", "mean_over_actions", "fixed_effect")
    """estimators run in the sweep"""
    explorer_model: str = "gsi"
    """which model's dataset the explorer widget shows"""
