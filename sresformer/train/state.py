"""Random-number state of a training process, as plain tensors and lists for ``weights_only`` loading.

A resumed run must draw the same random numbers an uninterrupted one would: torch's
CPU (and CUDA) generators drive the augmentation, Python's ``random`` and NumPy's
global generator are captured for any code that uses them, and the DataLoader's own
generator decides the shuffling order and the worker seeds. Checkpoints load with
``torch.load(weights_only=True)``, so every state is a tensor, an int, a float, None,
or a list of those (NumPy's key array becomes a list of ints).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python ``random`` and NumPy's global generator with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng(loader_generator: torch.Generator | None = None) -> dict:
    """The current state of every generator a training step may draw from."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss_next],
        "numpy": [kind, keys.astype(np.int64).tolist(), int(pos), int(has_gauss), float(cached)],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if loader_generator is not None:
        state["loader"] = loader_generator.get_state()
    return state


def restore_rng(state: dict, loader_generator: torch.Generator | None = None) -> None:
    """Put back what :func:`capture_rng` returned (the CUDA part only where CUDA is present)."""
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if loader_generator is not None and "loader" in state:
        loader_generator.set_state(state["loader"].cpu())
