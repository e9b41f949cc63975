"""The ``neuron`` kind's subtractive reset, compartment bias and initial membrane (the converted QCFS neuron).

Reference: the model's own soft-reset IF (``sresformer.qcfs.if_soft_reset``: ``v[0] = theta/2``,
``v += x``, spike on ``v >= theta``, ``v -= theta``), a separate float implementation, fed the same
integers; and Bu et al.'s closed form, ``count = clip(floor(t z / theta + 1/2), 0, t)`` for a constant
input ``z`` (``sresformer/qcfs.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.artifact_check import Invalid, check_kind
from hw_sim.chips import load_chip
from hw_sim.executor import Executor
from hw_sim.processes import Process, ProcessGraph
from sresformer.qcfs import if_soft_reset

THETA, T = 40, 16   # an even integer threshold: theta / 2 is an integer membrane


def _graph(n: int, bias=None, reset: str = "subtract") -> ProcessGraph:
    attrs = {"du": 4096, "dv": 0, "state_bits": 24, "decay_bits": 12, "reset": reset}
    params = {"vth": np.array([THETA]), "v0": np.full(n, THETA // 2, np.int64)}
    if bias is not None:
        params["bias"] = np.asarray(bias, np.int64)
    dense = {"op": "dense", "shift": 0, "graded_input": True, "weight_bits": 8}
    procs = [Process("input", "input", [], (n,), attrs={"bits": 8}),
             Process("syn", "synapse", ["input"], (n,), params={"weight": np.eye(n, dtype=np.int64),
                                                              "bias": np.zeros(n, np.int64)}, attrs=dense),
             Process("n", "neuron", ["syn"], (n,), params=params, attrs=attrs)]
    return ProcessGraph({p.name: p for p in procs}, "n", T=T, input_shape=(n,))


def _both(pg, frames):
    got = Executor(pg).run(frames, keep=True).values["n"]
    ref = FakeQuantModel(pg).run(frames, keep=True)[1]["n"]
    return got, ref.expand_as(got)


def test_soft_reset_with_initial_membrane_matches_the_models_neuron():
    """Random integer frames, positive and negative: the executor and the fake-quant model spike as the
    model's SoftIF on the same integers, and unlike a reset to 0 (the rule is exercised)."""
    n = 6
    g = torch.Generator().manual_seed(3)
    frames = torch.randint(-30, 60, (T, 1, n), generator=g).float()
    got, fq = _both(_graph(n), frames)
    want = if_soft_reset(frames.double(), float(THETA))
    assert torch.equal(got.double(), want) and torch.equal(fq.double(), want)
    hard, _ = _both(_graph(n, reset="zero"), frames)
    assert not torch.equal(hard.double(), want)


def test_bias_is_a_constant_input_and_counts_follow_qcfs():
    """A bias ``z`` with no input is a constant input: after ``t`` steps the count is QCFS's
    ``clip(floor(t z / theta + 1/2), 0, t)`` at every ``t`` (Bu et al., Theorem 2)."""
    z = np.array([0, 3, 13, 20, 27, 40])
    frames = torch.zeros(T, 1, len(z))
    got, fq = _both(_graph(len(z), bias=z), frames)
    t = np.arange(1, T + 1)[:, None]
    want = np.clip(np.floor(t * z / THETA + 0.5), 0, t)
    assert np.array_equal(got[:, 0].cumsum(0).numpy(), want)
    assert torch.equal(got, fq)


@pytest.mark.parametrize("chip, ok", [("loihi2", True), ("loihi1", False)])
def test_subtract_reset_only_on_a_chip_that_has_it(chip, ok):
    """Loihi 2's programmable neurons subtract; Loihi 1's fixed CUBA compartment resets to 0: refused."""
    pg = _graph(4)
    desc = load_chip(chip).__dict__
    if ok:
        check_kind(pg.processes["n"], pg, {"vth": (1,), "v0": (4,)}, desc)
    else:
        with pytest.raises(Invalid, match="reset 'subtract' needs a chip with subtract_reset"):
            check_kind(pg.processes["n"], pg, {"vth": (1,), "v0": (4,)}, desc)
