"""Shared fixtures. Our tests never import lava's or spikingjelly's stray top-level ``tests``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("SRESFORMER_NO_PROGRESS", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def warm_up(model, x, steps: int = 2):
    """A few no-grad training-mode forwards: BN statistics and DSSA rates become realistic."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    return model.eval()
