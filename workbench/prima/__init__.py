"""PRIMA (Wahed et al., arXiv 2412.15209): multi-image pixel-grounded reasoning segmentation at CPU scale.

Modules: ``config`` (Config), ``data`` (M4Seg schema, loader, generator, tokenizer), ``model``
(PRIMA and GLaMM-like variants), ``train`` (losses, trainer, checkpoints, generation, FLOPs),
``metrics`` (gIoU, cIoU, mIoU, Recall, per category), ``core`` (``run``).
"""
from .config import Config
from .core import PAPER, run

__all__ = ["Config", "PAPER", "run"]
