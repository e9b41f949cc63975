"""Worst-case magnitudes of the integer values a process computes (interval arithmetic).

One set of formulas for the two places that need them: the executor picks the narrowest
exact dtype from them (float32 holds integers exactly below 2^24, float64 below 2^53), and
the artifact reader refuses a file whose values could leave exact float64 integers.
Every bound is an upper bound on ``|value|`` in the value's own integer unit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hw_sim.processes import Process, sat_limit
from hw_sim.products import form_dims


def synapse_bounds(weight: np.ndarray, bias: np.ndarray, shift: int, in_b: float) -> tuple[float, float, float]:
    """``(acc, out, half)`` of a synapse: its accumulator, its output after the shift and bias,
    and the rounding term added before a right shift (0 for a left shift).

    |acc| <= max over outputs of the sum of |mantissa| over the fan-in, times max |input|.
    """
    w = np.abs(np.asarray(weight))
    acc = float(w.reshape(w.shape[0], -1).sum(1).max(initial=0)) * in_b if w.size else 0.0
    shifted = acc * 2.0 ** shift if shift >= 0 else acc / 2.0 ** -shift + 1
    out = shifted + float(np.abs(np.asarray(bias)).max(initial=0))
    half = 2.0 ** (-shift - 1) if shift < 0 else 0.0
    return acc, out, half


def current_bound(du: int, unity: int, T: int, in_b: float) -> float:
    """Worst |u| of a CUBA current with decay ``du`` (of ``unity = 2**decay_bits``) fed at most ``in_b``
    per step.

    No persistence (du = unity) keeps one step's input; a partial decay sums a geometric
    series to in / (du / unity) (+1 for truncation); no decay (du = 0) sums T steps.
    """
    if du == unity:
        return in_b
    return T * in_b if du == 0 else in_b * unity / du + 1


def dsmm_terms(p: Process, y: Process, s: Process) -> int:
    """Length of a dual-spike matmul's contraction: how many products one output sums."""
    return form_dims(p.attrs.form, p.attrs.heads, y.out_shape, s.out_shape).k


def gate_accumulator_bound(out_shape, in_b: float) -> float:
    """Worst |int64 intermediate| of an attention gate on ``[C, H, W]`` values within ``in_b``.

    Every gate is at most 2**gate_bits (<= 2**10), so the output stays within the input;
    inside, a channel sum reaches H W in_b and a weighted sum 127 C H W in_b.
    """
    C, H, W = out_shape
    return 127 * C * H * W * max(in_b, 1.0) * 2 ** 10


def saturated(pre: float, bits: int | None) -> tuple[float, int | None]:
    """``(bound, limit)`` of a value whose worst case before saturation is ``pre`` and which saturates
    at ``bits`` signed (``None``: never): the bound after the clamp, at most ``2**(bits-1) - 1``, and
    the clamp's limit, ``None`` where ``pre`` proves the clamp cannot act."""
    if bits is None:
        return pre, None
    lim = sat_limit(bits)
    return (pre, None) if pre <= lim else (float(lim), lim)


class NeuronBounds(NamedTuple):
    """Worst cases of a CUBA neuron's state (``u``, ``v`` saturate at ``state_bits``)."""

    pre: float        # max |u| or |v| before its clamp (the accumulator that must stay exact)
    u: float          # max |u| after its clamp
    u_clamps: bool    # the u clamp can act
    v_clamps: bool    # the v clamp can act


def neuron_bounds(du: int, dv: int, unity: int, bits: int, T: int, in_b: float) -> NeuronBounds:
    """Bounds of a neuron with decays ``du``, ``dv`` (of ``unity``), ``bits``-bit state, fed at most
    ``in_b`` per step for ``T`` steps.

    Without a current decay the unsaturated bound assumes ``T``, which frames may exceed: its
    clamp is then taken to act, and ``|u| <= 2**(bits-1) - 1`` holds for any length. ``|v|`` stays
    below ``u * unity / dv`` under a leak (a geometric series; truncation only shrinks it).
    """
    lim = sat_limit(bits)
    free = current_bound(du, unity, T, in_b)
    u_clamps = du == 0 or free > lim
    u = lim if du == 0 else min(free, lim)
    pre_u = in_b if du == unity else (lim + in_b if u_clamps else free)
    v_clamps = not dv or u * unity / dv > lim
    return NeuronBounds(max(pre_u, lim + u), u, u_clamps, v_clamps)
