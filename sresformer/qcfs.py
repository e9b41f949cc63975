"""QCFS activation (ANN side) and the soft-reset IF neurons it converts to (SNN side).

QCFS, the quantization-clip-floor-shift activation (Bu et al., ICLR 2022, eq. 15; the
activation of the Masked Spiking Transformer, Wang et al., ICCV 2023)::

    h(z) = lambda * clip(floor(z L / lambda + 1/2) / L, 0, 1)

with ``L`` quantization levels and a trainable threshold ``lambda`` per activation; the
floor passes its gradient straight through. Its converted neuron (Bu et al., Theorem 2)
is an integrate-and-fire neuron with threshold ``theta = lambda``, reset by subtraction
and initial membrane ``theta / 2``::

    v[0]   = theta / 2
    h[t]   = v[t-1] + x[t]
    s[t]   = H(h[t] - theta)
    v[t]   = h[t] - s[t] * theta

For a constant input ``z`` the spike count after ``t`` steps is exactly
``clip(floor(t z / theta + 1/2), 0, t)`` (``v`` stays in ``[0, theta)`` while
``0 <= z <= theta``), so at ``t = L`` the mean output ``theta * count / L`` equals
``h(z)``: one converted layer reproduces QCFS exactly.

:class:`RateIF` is the same neuron fed by the running estimate of a product of two rates
(the attention products of the converted transformer, :func:`cumulative_increment`).
Tensors are multi-step ``[T, B, ...]`` as in :mod:`sresformer.neurons`.
"""

from __future__ import annotations

import torch
from torch import nn

QCFS_LEVELS = 8    # our default L; MST trains with L = 16 (Wang et al., Sec. 4.1; bic-L code)
QCFS_LAMBDA0 = 2.0  # MST's initial lambda (bic-L/Masked-Spiking-Transformer, its QCFS module)


class _FloorSTE(torch.autograd.Function):
    """``floor`` forward, identity backward (Bu et al.'s straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def qcfs(z: torch.Tensor, lam: torch.Tensor | float, levels: int) -> torch.Tensor:
    """``lam * clip(floor(z L / lam + 1/2) / L, 0, 1)``: QCFS of ``z`` (same units as ``z`` and ``lam``)."""
    return torch.clamp(_FloorSTE.apply(z * levels / lam + 0.5) / levels, 0.0, 1.0) * lam


class QCFS(nn.Module):
    """QCFS activation with ``levels`` steps and a trainable scalar threshold ``lam`` (any shape in)."""

    #: its values are tokens ``[..., N, D]`` (the MST's): a spike mask trained on it indexes them channel-major
    channels_last = True

    def __init__(self, levels: int = QCFS_LEVELS, lam: float = QCFS_LAMBDA0):
        super().__init__()
        if levels < 1:
            raise ValueError(f"QCFS needs at least one level, got {levels}")
        self.levels = int(levels)
        self.lam = nn.Parameter(torch.tensor(float(lam)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return qcfs(z, self.lam, self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


def if_soft_reset(x_seq: torch.Tensor, theta: torch.Tensor | float) -> torch.Tensor:
    """Binary spikes ``[T, ...]`` of an IF neuron (threshold ``theta``, soft reset, ``v[0] = theta/2``)."""
    v = torch.zeros_like(x_seq[0]) + theta / 2
    out = torch.empty_like(x_seq)
    for t in range(x_seq.shape[0]):
        v = v + x_seq[t]
        s = (v >= theta).to(x_seq.dtype)
        out[t] = s
        v = v - s * theta
    return out


class SoftIF(nn.Module):
    """The converted QCFS: soft-reset IF, threshold ``theta``; emits ``scale * spikes``.

    ``scale`` is 1 where the converter folded ``theta`` into the consumer's weights (binary
    spikes), ``theta`` where the consumer is a residual sum it could not fold into (Bu et
    al.'s spikes of height theta).
    """

    #: its values are tokens ``[..., N, D]`` (the MST's): a spike mask indexes them channel-major
    channels_last = True

    def __init__(self):
        super().__init__()
        self.register_buffer("theta", torch.tensor(1.0))
        self.register_buffer("scale", torch.tensor(1.0))

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return if_soft_reset(x_seq, self.theta) * self.scale


def cumulative_increment(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``dP[t] = a[t] @ Cb[t] + Ca[t-1] @ b[t]`` for spike trains ``a [T, ..., N, M]``, ``b [T, ..., M, K]``.

    ``Ca[t] = sum_{tau <= t} a[tau]`` (running spike counts, ``Ca[0 - 1] = 0``), so the
    increments sum to ``P[t] = Ca[t] @ Cb[t]``: the product of the counts, updated with one
    product of a step's spikes against the other side's counts (accumulate-only when the
    spikes are binary).
    """
    cb = b.cumsum(0)
    ca_prev = a.cumsum(0) - a
    return a @ cb + ca_prev @ b


def rate_input(dP: torch.Tensor) -> torch.Tensor:
    """Per-step input ``I[t] = P[t] / t - P[t-1] / (t-1)`` (``t`` from 1, ``P[0] / 0 = 0``) from increments.

    Derivation: with spike counts ``Ca[t] = t ra[t]``, ``Cb[t] = t rb[t]`` the rate estimate of
    the product is ``ra[t] rb[t] = P[t] / t^2``. An IF neuron whose inputs so far sum to
    ``t`` times that estimate, ``sum_{tau <= t} I[tau] = P[t] / t``, integrates as if it had seen
    the estimate at every step: its count is ``t * QCFS(estimate) / theta`` up to the QCFS
    grid, the ANN's product of rates, which a per-step ``a[t] @ b[t]`` (the mean of products,
    not the product of means) does not give. Telescoping gives ``I[t]``.
    """
    t = torch.arange(1, dP.shape[0] + 1, dtype=dP.dtype, device=dP.device).view(-1, *[1] * (dP.dim() - 1))
    r = dP.cumsum(0) / t
    return r - torch.cat([torch.zeros_like(r[:1]), r[:-1]])
