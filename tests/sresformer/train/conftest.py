"""A tiny training run shared by the training and evaluation tests (nano on 64 digits, 2 epochs)."""

from __future__ import annotations

import pytest

TINY = dict(epochs=2, batch_size=32, limit_train=64, limit_test=48, seed=0)


@pytest.fixture(scope="session")
def tiny_args() -> dict:
    """The options of :func:`tiny_run` (a copy)."""
    return dict(TINY)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``(run_dir, summary)`` of ``train('spikingresformer_nano', ..., **TINY)`` on digits."""
    from sresformer.train import train

    out = tmp_path_factory.mktemp("tiny") / "run"
    summary = train("spikingresformer_nano", str(out), "digits", progress=False, **TINY)
    return out, summary
