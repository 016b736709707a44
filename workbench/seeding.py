"""Seeding. Library code takes ``seed``/``rng`` arguments and never seeds globally; notebooks call
:func:`seed_everything` once, and derive sub-seeds with :func:`derive_seed`.
"""
from __future__ import annotations

import hashlib
import os
import random

import numpy as np


def seed_everything(seed: int, *, deterministic_torch: bool = False) -> None:
    """Seed Python, NumPy and (if installed) torch global generators.

    >>> seed_everything(0); a = random.random(); seed_everything(0); a == random.random()
    True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:  # torch is optional for some notebooks
        return
    torch.manual_seed(seed)
    if deterministic_torch:
        torch.use_deterministic_algorithms(True, warn_only=True)


def derive_seed(*parts: object, bits: int = 63) -> int:
    """A stable integer seed from any printable parts (run seed, problem id, step, slot, ...).

    Independent of PYTHONHASHSEED and of the platform, unlike ``hash``.

    >>> derive_seed(1, "q3", 2) == derive_seed(1, "q3", 2)
    True
    >>> derive_seed(1, "q3", 2) != derive_seed(1, "q3", 3)
    True
    """
    h = hashlib.sha256("\x1f".join(repr(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << bits) - 1)


def make_rng(seed: int | None, *parts: object) -> np.random.Generator:
    """A NumPy generator seeded from ``seed`` and optional parts (``None`` -> fresh entropy)."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(derive_seed(seed, *parts) if parts else seed)
