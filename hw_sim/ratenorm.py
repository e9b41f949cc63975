"""The rate-normalised IF (``neuron`` ``reset='rate'``): the reader of a cumulative product of spike counts.

A converted MST's attention product is exact in rates when it is the product of running spike
counts (``sresformer.qcfs.cumulative_increment``): ``P_t = C^a_t (C^b_t)^T`` grows by
``dP_t = s^a_t (C^b_t)^T + C^a_{t-1} (s^b_t)^T`` (two gated accumulations of a step's spikes against
the other side's counts). The neuron that reads it is the soft-reset IF with initial membrane
``theta / 2`` and bias ``beta`` fed ``I_t = P_t / t - P_{t-1} / (t-1)`` (``rate_input``), whose
membrane before its spike at ``t`` is ``theta/2 + P_t / t + t beta - theta N_{t-1}`` (``N`` its spikes
so far). Multiplied by ``2 t > 0`` the firing condition has no division::

    s_t = [ 2 P_t + 2 t^2 beta >= t Theta (2 N_{t-1} + 1) ]          (Theta = vth, beta = bias)

Every register updates by additions only (no multiplier, as a programmable neuron's microcode
adds): ``P += in``; ``Q = 2 t^2 beta`` by ``Q += D``, ``D += 4 beta`` (``D_1 = 2 beta``: ``2 beta (2t-1)``);
``R = t Theta (2 N_{t-1} + 1)`` by ``R += M`` (``M = Theta (2 N + 1)``), and after a spike ``M += 2 Theta``,
``R += Y`` twice with ``Y = t Theta`` (``Y += Theta``); the compared sum ``2 P + Q`` is two more. That is
:data:`ADDS_PER_STEP` additions per compartment and step and :data:`ADDS_PER_SPIKE` more per spike,
which the counters charge as ACs (the comparison itself is the neuron update, as a CUBA neuron's).

This is not a CUBA compartment: on Loihi 2 it is a programmable (microcode) neuron model with
seven registers (Orchard et al., SiPS 2021: user-defined neuron models), so the lowering builds it
only for a chip with ``product_neurons`` (Loihi 2's programmable neurons) and never for Loihi 1.
Its registers are the chip's ``state_bits`` wide; :func:`register_bound` is their worst case over
``T`` steps and the lowering refuses a ``T`` beyond it.
"""

from __future__ import annotations

import torch

ADDS_PER_STEP = 7    # P += in, Q += D, D += 4 beta, R += M, Y += Theta, and 2 P + Q (module doc)
ADDS_PER_SPIKE = 3   # M += 2 Theta (2 Theta stored), R += Y twice


def register_bound(T: int, vth: float, bias: float, p_bound: float) -> float:
    """Largest magnitude any register (or the compared sum ``2 P + Q``) reaches in ``T`` steps, in the
    membrane's integer unit: ``|2 P + Q| <= 2 p_bound + 2 T^2 |bias|``, ``R <= T vth (2 T + 1)`` (``N <= T``),
    ``Y <= T vth``, ``|D| <= 2 |bias| (2 T - 1)``; ``p_bound`` bounds ``|P_T|`` (for a product of counts
    with contraction length ``k``: ``k T^2`` times the input's power of two)."""
    lhs = 2.0 * p_bound + 2.0 * T * T * abs(bias)
    return max(lhs, T * vth * (2.0 * T + 1.0))


def max_steps(vth: float, bias: float, p_bound_of, limit: float, cap: int = 1 << 16) -> int:
    """The largest ``T <= cap`` whose :func:`register_bound` is within ``limit`` (0 when none is);
    ``p_bound_of(T)`` bounds ``|P_T|`` at that ``T``."""
    lo, hi = 0, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if register_bound(mid, vth, bias, p_bound_of(mid)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def rate_steps(x: torch.Tensor, vth: torch.Tensor, bias: torch.Tensor | None):
    """Spikes and active compartments ``[T, B, ...]`` of the rate-normalised IF over integer inputs
    ``x [T, B, ...]``, by the additions of the module doc (int64: the lowering bounds every register
    within the state width, so nothing wraps or saturates)."""
    x = x.to(torch.int64)
    shape = x.shape[1:]
    theta = vth.to(torch.int64).expand(shape)
    beta = torch.zeros(shape, dtype=torch.int64) if bias is None else bias.to(torch.int64).expand(shape)
    P = torch.zeros(shape, dtype=torch.int64)
    Q, D = torch.zeros_like(P), 2 * beta
    R, M, Y = torch.zeros_like(P), theta.clone(), torch.zeros_like(P)
    fired = torch.empty(x.shape, dtype=torch.bool)
    for t in range(x.shape[0]):
        P += x[t]
        Q += D
        D += 4 * beta
        R += M
        Y += theta
        s = torch.ge(P + P + Q, R, out=fired[t])
        M += (theta + theta) * s
        R += (Y + Y) * s
    return fired, torch.ones(x.shape, dtype=torch.bool)   # every register moves at every step: all active
