"""Worst-case magnitudes of an artifact's values, checked before anything is computed from it.

The artifact reader's last content check (after ``artifact_check``): interval arithmetic over the
graph, as the executor bounds it (``hw_sim.bounds``), so that every value, and every accumulator
before its saturation, stays an exact float64 integer, and an attention gate's intermediates an
exact int64. Problems are ``artifact_check.Invalid``.
"""

from __future__ import annotations

import math

import numpy as np

from .artifact_check import F64_EXACT, INT64_SAFE, Invalid, where_of
from .bounds import dsmm_terms, gate_accumulator_bound, neuron_bounds, saturated, synapse_bounds
from .processes import GRADED_KINDS, Process, ProcessGraph


def _bound_input(p, pg, bound, in_b):
    return 2 ** (p.attrs.bits - 1) - 1, in_b


def _bound_synapse(p, pg, bound, in_b):
    # the accumulator, its rounding term and the input are held exactly too
    acc, b, half = synapse_bounds(p.params["weight"], p.params["bias"], p.attrs.shift, in_b)
    return b, max(b, in_b, acc + half)


def _bound_neuron(p, pg, bound, in_b):
    a = p.attrs
    bias = p.params.get("bias")   # a compartment bias enters every step as input does
    in_b = in_b * 2 ** a.in_shift + (float(np.max(np.abs(bias))) if bias is not None and np.size(bias) else 0.0)
    pre = neuron_bounds(a.du, a.dv, a.unity, a.state_bits, pg.T, in_b).pre
    if pre >= F64_EXACT:
        raise Invalid(f"{where_of(p)}: its current can reach {pre:.3g} before saturating, beyond exact float64 "
                      "integers")
    return 1.0, in_b


def _bound_dsmm(p, pg, bound, in_b):
    y, s = (pg.processes[o] for o in p.operands)
    return dsmm_terms(p, y, s) * bound[y.name] * bound[s.name], in_b


def _bound_sumpool(p, pg, bound, in_b):
    return math.prod(p.attrs.kernel) * in_b, in_b


def _bound_attngate(p, pg, bound, in_b):
    _gate_bounds(p, in_b)
    return in_b, in_b


def _bound_same(p, pg, bound, in_b):
    return in_b, in_b


def _bound_spikes(p, pg, bound, in_b):
    return 1.0, in_b


#: process kind -> ``(p, pg, bounds so far, summed input bound)`` -> ``(|output| bound, worst |held value|)``
BOUNDS = {"input": _bound_input, "synapse": _bound_synapse, "neuron": _bound_neuron, "sum": _bound_same,
          "dsmm": _bound_dsmm, "prodmm": _bound_dsmm, "sumpool": _bound_sumpool, "maxpool": _bound_same,
          "flatten": _bound_same,
          "attngate": _bound_attngate, "gate": _bound_spikes}


def check_bounds(pg: ProcessGraph) -> None:
    """Every value's worst case (the executor's interval arithmetic) stays exact: float64, int64 for gates;
    a graded kind's value before its saturation too, and after it at most ``2**(out_bits-1) - 1``."""
    bound: dict[str, float] = {}
    for p in pg:
        b, worst = BOUNDS[p.kind](p, pg, bound, float(sum(bound[s] for s in p.sources)))
        if not max(b, worst) < F64_EXACT:
            raise Invalid(f"{where_of(p)}: its values can reach {b:.3g}, beyond exact float64 integers (2**53); "
                          "its weights, shift or bias are out of range")
        bound[p.name] = saturated(b, p.attrs.out_bits)[0] if p.kind in GRADED_KINDS else b


def _synapse_out(weight, shift: int, in_b: float) -> float:
    """Worst |output| of a bias-free synapse stage inside a gate (``hw_sim.bounds.synapse_bounds``)."""
    return synapse_bounds(weight, np.zeros(1), shift, in_b)[1]


def _gate_bounds(p: Process, x: float) -> None:
    """The gate's int64 intermediates (``gate.py``) stay far from overflow, for any input within ``x``."""
    a, w = p.attrs, p.params
    C, H, W = p.out_shape
    worst = gate_accumulator_bound(p.out_shape, x)   # the executor's own guard
    if "c" in a.gates:
        ha = _synapse_out(w["ca_w1_avg"], a.ca_shift1_avg, H * W * x)
        hm = _synapse_out(w["ca_w1_max"], a.ca_shift1_max, x)
        z = _synapse_out(w["ca_w2"], a.ca_shift2, max(ha, hm)) * 2 + float(np.abs(w["ca_bias"]).max())
        worst = max(worst, ha, hm, z, x * 2.0 ** a.gate_bits)
    if "s" in a.gates:
        z = _synapse_out(w["sa_weight"], a.sa_shift, C * x) + float(np.abs(w["sa_bias"]).max())
        worst = max(worst, z, x * 2.0 ** a.gate_bits)
    if not worst < INT64_SAFE:
        raise Invalid(f"{where_of(p)}: its int64 intermediates can reach {worst:.3g}; weights or shifts out of range")
