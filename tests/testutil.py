"""Helpers shared by the test modules (imported as ``testutil``; tests/ is on sys.path via its conftest)."""

from __future__ import annotations

from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def warm_up(model, x, steps: int = 2):
    """A few no-grad training-mode forwards: BN statistics and DSSA rates become realistic."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    return model.eval()
