"""Configuration of the DEL GFlowNet notebook (small CPU defaults)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    seed: int = 0
    """seed of the experiment"""
    blocks_csv: str = ""
    """CSV of building blocks (columns cycle,id,smiles); empty = the built-in three-cycle set"""
    n_blocks_per_cycle: int = 16
    """blocks drawn (seeded) from each cycle of the set; 0 = use all"""
    quota_per_cycle: int = 3
    """blocks chosen per cycle in a library (|L(x)| = quota ** n_cycles)"""
    labelled_csv: str = ""
    """labelled molecules (columns smiles,label); empty = proxy labels (QEPPI + Rule of Four)"""
    n_label_molecules: int = 800
    """proxy-labelled set: random products of the building-block set"""
    qeppi_threshold: float = 0.75
    """proxy label: QEPPI at least this (reconstruction)"""
    ro4_min: int = 3
    """proxy label: at least this many of the four Rule-of-Four criteria (reconstruction)"""
    features: str = "ecfp"
    """RF / MLP features: ecfp, desc or ecfp+desc (desc holds every input of the proxy label)"""
    allow_label_inputs: bool = False
    """with proxy labels, allow features that are inputs of the label function (a leak; diagnostic only)"""
    leak_check: bool = True
    """with proxy labels, also fit the RF on each feature set (ecfp, desc, ecfp+desc) and report ROC-AUC"""
    n_bits: int = 2048
    """ECFP4 length"""
    models: str = "rf,mlp,gnn"
    """PPI classifiers to compare (comma-separated: rf, mlp, gnn)"""
    reward_model: str = "rf"
    """classifier whose p defines the reward (one of models)"""
    test_frac: float = 0.2
    """scaffold-split test fraction"""
    rf_trees: int = 100
    """random-forest trees"""
    gnn_epochs: int = 10
    """GIN training epochs"""
    beta: float = 20.0
    """reward scale: log R(x) = beta * mean p over L(x) (reconstruction)"""
    max_products: int = 1000
    """libraries larger than this are scored on a seeded sample of products"""
    failure_policy: str = "exclude"
    """failed syntheses: exclude from L(x) or score them zero"""
    n_clusters_per_cycle: int = 4
    """hierarchical action space: ECFP4-Jaccard agglomerative clusters per cycle"""
    gflownets: str = "flat:tb,flat:db,hierarchical:tb"
    """GFlowNets to train, action_space:objective (flat|hierarchical : tb|db)"""
    n_iterations: int = 150
    """training iterations per GFlowNet"""
    batch_size: int = 16
    """trajectories per iteration"""
    lr: float = 3e-3
    """policy learning rate"""
    lr_logz: float = 0.1
    """log Z learning rate (TB)"""
    tb_init_logz_estimate: bool = True
    """start TB's log Z at log(#libraries) + log mean R of the random libraries (else 0)"""
    epsilon: float = 0.0
    """epsilon-greedy exploration while training (0 = on-policy)"""
    hidden: int = 128
    """policy MLP width"""
    n_eval_samples: int = 64
    """libraries every method outputs (GFlowNet samples, annealing chains, random-search picks, top-k runs)"""
    n_reference: int = 256
    """uniformly random libraries that set the mode threshold (not counted as any method)"""
    top_k: int = 10
    """top-k metric: mean reward of the k best distinct libraries"""
    mode_quantile: float = 0.95
    """a mode needs mean p above this quantile of random libraries' mean p"""
    mode_min_distance: float = 0.5
    """modes are at least this Jaccard distance apart"""
    n_diversity_molecules: int = 150
    """products drawn per method for molecule diversity"""
    action_space_seeds: int = 4
    """flat vs hierarchical on the known-truth cluster reward: seeds (0 = skip the experiment)"""
    as_blocks_per_cycle: int = 48
    """that experiment's pool: built-in blocks per cycle (seeded)"""
    as_clusters_per_cycle: int = 6
    """its ECFP4-Jaccard clusters per cycle (the hierarchical action space)"""
    as_cluster_share: float = 0.8
    """share of a block's score variance set by its cluster (0 = clusters carry no signal; reconstruction)"""
    as_beta: float = 40.0
    """its reward scale (sharper than the main reward)"""
    as_mode_gap: float = 0.1
    """its modes: libraries whose mean p is within this of the known optimum's"""
    as_iterations: int = 100
    """its training iterations per GFlowNet (batch_size trajectories each)"""
    torch_threads: int = 1
    """torch threads inside run() (1 is fastest for these small networks on a shared CPU)"""
