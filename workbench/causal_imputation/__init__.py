"""Causal imputation via synthetic interventions: SI-A, SI-C (Squires et al. 2022, arXiv 2011.03127)
and generalized synthetic interventions (GSI, Jiralerspong et al., arXiv 2410.20647; the GSI estimator
here is a RECONSTRUCTION, see :mod:`.estimators`), with baselines, latent factor generators, metrics and
a vectorised implementation that imputes every missing pair of a 200 x 200 x 100 tensor in seconds.

- :mod:`.data`: ``ImputationData`` (Y[context, action, feature] + mask), long-format CSV/Parquet loaders.
- :mod:`.generators`: SI-A / SI-C / GSI (sum) latent factor models, CP, additive; sparsity patterns.
- :mod:`.donors`: greedy donor selection (naive and vectorised).
- :mod:`.estimators`: SI-A, SI-C, GSI, mean over actions / contexts, two-way mean, fixed effect, PARAFAC.
- :mod:`.metrics`: per-pair R^2, cosine of change from control, RMSE, relative MSE.
- :mod:`.core`: ``run(cfg)``, ``evaluate``, per-pair tables, widget data.
"""
from .config import Config
from .core import evaluate, explorer_data, impute, per_pair_table, run, targets
from .data import ImputationData, donor_report, from_long, read_table, to_long
from .estimators import (ESTIMATORS, impute_fixed_effect, impute_gsi, impute_mean_over_actions,
                         impute_mean_over_contexts, impute_parafac, impute_si, impute_two_way)
from .generators import MODELS, PATTERNS, latent_tensor, make_dataset, sparsity_mask
from .metrics import per_pair_metrics, summarise

__all__ = ["Config", "evaluate", "explorer_data", "impute", "per_pair_table", "run", "targets", "ImputationData",
           "donor_report", "from_long", "read_table", "to_long", "ESTIMATORS", "impute_fixed_effect", "impute_gsi",
           "impute_mean_over_actions", "impute_mean_over_contexts", "impute_parafac", "impute_si", "impute_two_way",
           "MODELS", "PATTERNS", "latent_tensor", "make_dataset", "sparsity_mask", "per_pair_metrics", "summarise"]
