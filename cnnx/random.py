"""cnnx's random number generator: one seeded stream for ``randn``, ``nn.init`` and dropout.

Like PyTorch's default generator it starts from a fixed seed, so a fresh process is reproducible;
``cnnx.manual_seed(s)`` restarts it. The stream is numpy's PCG64, so cnnx draws different numbers
than PyTorch for the same seed (weights are compared with PyTorch by loading them, not by seed).
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["manual_seed", "seed", "initial_seed", "get_rng_state", "set_rng_state", "generator"]

_DEFAULT_SEED = 67280421310721  # PyTorch's default initial seed
_initial_seed = _DEFAULT_SEED
_rng = np.random.Generator(np.random.PCG64(_DEFAULT_SEED))


def manual_seed(seed: int) -> np.random.Generator:
    """Restart the generator from ``seed`` (a non-negative int); returns it."""
    global _rng, _initial_seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"manual_seed(): seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"manual_seed(): seed must be >= 0, got {seed}")
    _initial_seed = int(seed)
    _rng = np.random.Generator(np.random.PCG64(_initial_seed))
    return _rng


def seed() -> int:
    """Seed the generator from the operating system's entropy; returns the seed used."""
    s = int(np.random.SeedSequence().entropy % (2**63))
    manual_seed(s)
    return s


def initial_seed() -> int:
    """The seed the generator was last started from."""
    return _initial_seed


def get_rng_state() -> dict:
    """The generator's state (a dict), for checkpoints."""
    return _rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by ``get_rng_state()``."""
    _rng.bit_generator.state = state


def generator() -> np.random.Generator:
    """The generator itself (for code inside cnnx that draws numbers)."""
    return _rng
