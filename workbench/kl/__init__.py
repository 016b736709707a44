"""KL estimators in RL for language models ("A Comedy of Estimators", Shah et al. 2025, arXiv 2512.21852).

Exact gradient-bias analysis of every estimator configuration on enumerable autoregressive policies
(:mod:`.exact`), the estimators and configurations as data (:mod:`.estimators`), tiny policies
(:mod:`.policies`), small RL runs on- and off-policy (:mod:`.rl`), a transformers variant of the RL
loop (:mod:`.hf`) and the notebook entry point :func:`run`.
"""
from .estimators import KLConfig, kl_estimate, off_policy_configs, on_policy_configs, parse_config, surrogate

__all__ = ["KLConfig", "kl_estimate", "on_policy_configs", "off_policy_configs", "parse_config", "surrogate"]
from .config import Config  # noqa: E402
from .core import run  # noqa: E402

__all__ += ["Config", "run"]
