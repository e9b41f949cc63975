"""RNG capture and restore, through a weights_only checkpoint round trip."""

import random

import numpy as np
import torch

from sresformer.train.state import capture_rng, restore_rng, seed_everything


def _draw(gen):
    return (torch.rand(3).tolist(), random.random(), np.random.rand(2).tolist(), random.gauss(0, 1),
            torch.randperm(10, generator=gen).tolist())


def test_rng_state_round_trips_through_weights_only_file(tmp_path):
    seed_everything(7)
    gen = torch.Generator().manual_seed(3)
    _draw(gen)
    state = capture_rng(gen)
    expected = _draw(gen)
    torch.save({"rng": state}, tmp_path / "s.pt")
    seed_everything(99)
    gen2 = torch.Generator().manual_seed(5)
    _draw(gen2)
    restore_rng(torch.load(tmp_path / "s.pt", weights_only=True)["rng"], gen2)
    assert _draw(gen2) == expected
