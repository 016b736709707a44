"""GIT-STORM (Meo et al., arXiv 2410.07836): STORM's transformer world model with an MLP or a MaskGIT
prior, the state mixer for continuous actions, actor-critic in imagination, video-prediction metrics.

Entry point: :func:`run` (see :mod:`workbench.git_storm.core`); configuration :class:`Config`.
"""
from .config import Config, atari100k_config, dmc_config, paper_model_config
from .core import Replay, collect, compare_priors, outer_loop, run, train_world_model, video_prediction
from .envs import make_env
from .priors import MLPPrior, MaskGITPrior, build_prior, mask_ratio, sample_train_mask
from .world_model import WorldModel

__all__ = ["Config", "atari100k_config", "dmc_config", "paper_model_config", "run", "compare_priors",
           "outer_loop", "Replay", "collect", "train_world_model", "video_prediction", "make_env",
           "MLPPrior", "MaskGITPrior", "build_prior", "mask_ratio", "sample_train_mask", "WorldModel"]
