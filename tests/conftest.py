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


@pytest.fixture(scope="module")
def one_thread():
    """Single-threaded torch for a module: on a shared 2-core machine, OpenMP threads otherwise wait on busy cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
