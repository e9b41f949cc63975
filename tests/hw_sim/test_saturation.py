"""Integers as wide as the chip's: ``u``, ``v`` saturate at ``state_bits``, graded outputs at ``out_bits``.

Each case is a hand-built graph where the clamp acts and removing it changes the spikes: the
expected spikes are worked out by hand (in the comments) and by a plain-Python integer reference
written here, with and without the clamp; the executor and the fake-quant model must both give
the clamped result and count exactly the values the clamps changed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.executor import Executor
from hw_sim.processes import Process, ProcessGraph

pytestmark = pytest.mark.usefixtures("one_thread")

UNITY = 4096


# -- a plain-Python reference of the spec (processes.py), written for these tests ----------------------

def _decay(x: int, d: int) -> int:
    return (1 if x >= 0 else -1) * ((abs(x) * (UNITY - d)) >> 12)


def _sat(x: int, bits: int | None) -> tuple[int, int]:
    """(saturated x, 1 when the clamp changed it); ``bits`` None: no clamp."""
    if bits is None:
        return x, 0
    lim = 2 ** (bits - 1) - 1
    return max(-lim, min(lim, x)), int(abs(x) > lim)


def lif(inputs, du, dv, bits, vth, clamp_u=True, clamp_v=True):
    """CUBA-LIF on one compartment: spikes, ``u`` and ``v`` (before reset) per step, clamp count."""
    u = v = count = 0
    spikes, us, vs = [], [], []
    for x in inputs:
        u, c = _sat(_decay(u, du) + x, bits if clamp_u else None)
        count += c
        v, c = _sat(_decay(v, dv) + u, bits if clamp_v else None)
        count += c
        us.append(u)
        vs.append(v)
        spikes.append(int(v >= vth))
        v = 0 if v >= vth else v
    return spikes, us, vs, count


# -- graphs on frames [T, B, N] of exact integers (16-bit input, unit 1) -----------------------------------

def _input(shape):
    return Process("input", "input", [], shape, attrs={"bits": 16}, exponent=0)


def _neuron(src, n, du, dv, bits, vth):
    return Process("n", "neuron", [src], (n,), params={"vth": np.array([vth])},
                   attrs={"du": du, "dv": dv, "state_bits": bits, "decay_bits": 12})


def _graph(procs, T, in_shape):
    return ProcessGraph({p.name: p for p in procs}, "n", T=T, input_shape=in_shape, input_static=False)


def _run_both(pg, frames):
    """Spikes ``[T, B, N]`` and saturation counts of the executor and the fake-quant model."""
    x = torch.tensor(frames, dtype=torch.float64)
    res = Executor(pg).run(x)
    fq = FakeQuantModel(pg)
    logits, _ = fq.run(x)
    return res.logits, res.saturated, logits.to(torch.int64), fq.saturated


def _per_sample(out: torch.Tensor) -> list[list[int]]:
    """``[T, B, 1]`` -> per sample, the spikes over T."""
    return out[..., 0].T.tolist()


def _check(pg, frames, expected, hand_count):
    exe, exe_sat, fq, fq_sat = _run_both(pg, frames)
    assert _per_sample(exe) == expected and _per_sample(fq) == expected
    assert exe_sat == fq_sat == hand_count


def test_membrane_saturation_changes_the_spikes():
    """IF (dv = 0) with 8-bit state (limit 127), vth 100. Sample 0: inputs -100, -100, 120, 110.
    Clamped: v = -100, -127 (-200 clamped), -7, 103 -> one spike at t3. Unclamped: v = -100, -200,
    -80, 30: no spike. Sample 1 (10, 20, 30, 50) never reaches the limit."""
    inputs = [[-100, -100, 120, 110], [10, 20, 30, 50]]
    ref = [lif(s, UNITY, 0, 8, 100) for s in inputs]
    assert ref[0][0] == [0, 0, 0, 1] and ref[0][2] == [-100, -127, -7, 103]
    assert lif(inputs[0], UNITY, 0, 8, 100, clamp_v=False)[0] == [0, 0, 0, 0]   # the clamp matters
    pg = _graph([_input((1,)), _neuron("input", 1, UNITY, 0, 8, 100)], 4, (1,))
    frames = np.array(inputs, dtype=np.float64).T[:, :, None]
    _check(pg, frames, [r[0] for r in ref], {"n": 1})


def test_current_saturation_changes_the_spikes():
    """No current decay (du = 0: u integrates), dv = unity (v = u), 8-bit state, vth 60; inputs
    100, 100, -120, 0. Clamped: u = 100, 127 (200 clamped), 7, 7 -> spikes 1, 1, 0, 0.
    Unclamped: u = 100, 200, 80, 80 -> spikes at every step (v still clamps 200 to 127)."""
    inputs = [100, 100, -120, 0]
    spikes, us, _, count = lif(inputs, 0, UNITY, 8, 60)
    assert spikes == [1, 1, 0, 0] and us == [100, 127, 7, 7] and count == 1
    assert lif(inputs, 0, UNITY, 8, 60, clamp_u=False)[0] == [1, 1, 1, 1]
    pg = _graph([_input((1,)), _neuron("input", 1, 0, UNITY, 8, 60)], 4, (1,))
    _check(pg, np.array(inputs, dtype=np.float64)[:, None, None], [spikes], {"n": 1})


def _graded(kind: str, out_bits: int | None):
    """A graph whose graded value ``g`` is ``3 x`` (saturating at ``out_bits``) feeding an IF neuron."""
    if kind == "synapse":
        procs = [_input((1,)), Process("g", "synapse", ["input"], (1,), params={
            "weight": np.array([[3]]), "bias": np.zeros(1, np.int64)}, attrs={
            "op": "dense", "shift": 0, "graded_input": True, "weight_bits": 8, "out_bits": out_bits})]
        in_shape, reader = (1,), "g"
    elif kind == "sum":   # x + 2 x
        procs = [_input((1,)), Process("twice", "synapse", ["input"], (1,), params={
            "weight": np.array([[2]]), "bias": np.zeros(1, np.int64)}, attrs={
            "op": "dense", "shift": 0, "graded_input": True, "weight_bits": 8, "out_bits": 24}),
            Process("g", "sum", ["input", "twice"], (1,), attrs={"alias": False, "out_bits": out_bits})]
        in_shape, reader = (1,), "g"
    else:                 # sumpool: a 1 x 3 window over three copies of x
        procs = [_input((1, 1, 3)), Process("g", "sumpool", ["input"], (1, 1, 1), attrs={
            "kernel": (1, 3), "stride": (1, 1), "padding": (0, 0), "out_bits": out_bits}),
            Process("flat", "flatten", ["g"], (1,))]
        in_shape, reader = (1, 1, 3), "flat"
    return _graph(procs + [_neuron(reader, 1, UNITY, 0, 24, 300)], 4, in_shape), in_shape


@pytest.mark.parametrize("kind", ["synapse", "sum", "sumpool"])
def test_graded_saturation_changes_the_spikes(kind):
    """``g = sat(3 x, 8 bits)`` into IF, vth 300. Sample 0: x = 50 at every step: g = 127 (150
    clamped) four times, v = 127, 254, 381 (spike), 127 -> spikes 0, 0, 1, 0. Unclamped: g = 150,
    v = 150, 300 (spike), 150, 300 (spike) -> 0, 1, 0, 1. Sample 1 (10, 20, 30, 40): g = 30, 60,
    90, 120 never clamps, v reaches 300 at t3."""
    xs = [[50, 50, 50, 50], [10, 20, 30, 40]]
    ref = []
    for s in xs:
        g = [_sat(3 * x, 8) for x in s]
        ref.append((lif([v for v, _ in g], UNITY, 0, 24, 300)[0], sum(c for _, c in g)))
    assert ref[0] == ([0, 0, 1, 0], 4) and ref[1] == ([0, 0, 0, 1], 0)
    assert lif([150] * 4, UNITY, 0, 24, 300)[0] == [0, 1, 0, 1]   # without the clamp
    pg, in_shape = _graded(kind, 8)
    frames = np.broadcast_to(np.array(xs, dtype=np.float64).T.reshape(4, 2, *([1] * len(in_shape))),
                             (4, 2, *in_shape)).copy()
    _check(pg, frames, [r[0] for r in ref], {"g": 4})
    exe, *_ = _run_both(_graded(kind, None)[0], frames)   # the same graph without saturation
    assert _per_sample(exe)[0] == [0, 1, 0, 1]


def test_saturated_bounds_shrink_and_idle_clamps_are_skipped():
    """A synapse whose worst case (127 x 2**15 x 127 x 8 ~ 2**32) needs float64 before its clamp:
    after it, its bound is 2**23 - 1, so the neuron reading it keeps its state in float32; a
    24-bit out_bits on a value that cannot reach it leaves no clamp to run."""
    w = np.full((4, 8), 127)
    procs = [_input((8,)), Process("g", "synapse", ["input"], (4,), params={"weight": w, "bias": np.zeros(4, np.int64)},
                                   attrs={"op": "dense", "shift": 0, "graded_input": True, "weight_bits": 8,
                                          "out_bits": 24}),
             Process("n", "neuron", ["g"], (4,), params={"vth": np.array([1000])},
                     attrs={"du": UNITY, "dv": 2048, "state_bits": 24, "decay_bits": 12})]
    ex = Executor(_graph(procs, 2, (8,)))
    g, n = ex.plans["g"], ex.plans["n"]
    assert g.dtype == torch.float64 and g.bound == 2 ** 23 - 1 and g.limit == 2 ** 23 - 1
    assert n.compute == torch.float32
    small = _graph([_input((1,)), Process("g", "sum", ["input"], (1,), attrs={"alias": True, "out_bits": 24}),
                    _neuron("g", 1, UNITY, 2048, 24, 5)], 2, (1,))
    assert Executor(small).plans["g"].limit is None   # |x| <= 2**15 - 1 never reaches 2**23 - 1


def test_golden_impulse_trace():
    """One impulse of 1000 at t0, du = 1024, dv = 2048 (of 4096), vth 1200, by hand:
    u = 1000, 750, 562 (562.5), 421 (421.5), 315 (315.75), 236 (236.25);
    v = 1000, 1250 (>= 1200: spike, reset), 562, 281 + 421 = 702, 351 + 315 = 666, 333 + 236 = 569.

    Not compared with Lava's ``PyLifModelBitAcc``: it left-shifts the input by 6 bits (MSB alignment)
    and keeps those 6 fractional bits through the decays, so its ``u / 64`` at t2 is 562.5 where the
    integer spec (and a 24-bit Loihi compartment fed unshifted) truncates to 562; its traces are the
    spec's only when every decay is exact."""
    u_hand = [1000, 750, 562, 421, 315, 236]
    v_hand = [1000, 1250, 562, 702, 666, 569]
    spikes, us, vs, count = lif([1000, 0, 0, 0, 0, 0], 1024, 2048, 24, 1200)
    assert (us, vs, spikes, count) == (u_hand, v_hand, [0, 1, 0, 0, 0, 0], 0)
    pg = _graph([_input((1,)), _neuron("input", 1, 1024, 2048, 24, 1200)], 6, (1,))
    x = torch.tensor([1000.0, 0, 0, 0, 0, 0]).view(6, 1, 1)
    for impl in (Executor(pg), FakeQuantModel(pg)):
        trace = []
        impl.probe = lambda p, t, u, v: trace.append((t, int(u.flatten()[0]), int(v.flatten()[0])))  # noqa: B023
        out = impl.run(x)
        logits = out.logits if hasattr(out, "logits") else out[0]
        assert trace == [(t, u, v) for t, (u, v) in enumerate(zip(u_hand, v_hand, strict=False))], type(impl).__name__
        assert logits.flatten().tolist() == [0, 1, 0, 0, 0, 0]


def test_a_clamp_never_changes_the_value_it_reads():
    """The input x = 200 is read by an 8-bit neuron ``a`` with no current memory (du = unity: its
    u is x itself, clamped to 127), by a one-source sum ``g`` saturating at 8 bits (127) and by the
    IF neuron ``n`` (vth 300), which adds g and x: 127 + 200 = 327 spikes at both steps. Had a clamp
    written into x, n would see 127 + 127 = 254 and spike only at t1."""
    procs = [_input((1,)),
             Process("a", "neuron", ["input"], (1,), params={"vth": np.array([1000])},
                     attrs={"du": UNITY, "dv": UNITY, "state_bits": 8, "decay_bits": 12}),
             Process("g", "sum", ["input"], (1,), attrs={"alias": False, "out_bits": 8}),
             Process("n", "neuron", ["g", "input"], (1,), params={"vth": np.array([300])},
                     attrs={"du": UNITY, "dv": 0, "state_bits": 24, "decay_bits": 12})]
    pg = _graph(procs, 2, (1,))
    _check(pg, np.full((2, 1, 1), 200.0), [[1, 1]], {"a": 2, "g": 2})
