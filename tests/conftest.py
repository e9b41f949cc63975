"""Shared fixtures. Our tests never import lava's or spikingjelly's stray top-level ``tests``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# the project root (our packages) and tests/ (testutil) come first: lava's and spikingjelly's
# wheels install a stray top-level `tests` package that must never shadow ours
for path in (str(ROOT / "tests"), str(ROOT)):
    if path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)
os.environ.setdefault("SRESFORMER_NO_PROGRESS", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
