"""Dual Spike Self-Attention (DSSA), SpikingResformer eq. (8)-(11) (Shi et al., CVPR 2024).

For input ``X`` (real-valued residual stream, ``[T, B, C, H, W]``) and ``S = LIF(X)``::

    Y       = BN(Conv_pxp(S))                    # C -> 2C channels, kernel = stride = p
    Y1, Y2  = per head h: the first / second d = C/heads channels of head h's 2d
    A       = LIF(c1 * Y1^T @ S)                 # [N, HW] binary attention map
    O       = LIF(c2 * Y2 @ A)                   # [d, HW]
    out     = BN(Conv1x1(O)) + X
    c1 = 1 / sqrt(fr_x * d),  c2 = 1 / sqrt(fr_attn * N)

``fr_x`` / ``fr_attn`` are per-head firing rates of ``S`` and ``A`` kept as buffers
(``[1, 1, heads, 1, 1]``): an exponential moving average (momentum 0.999) in training,
seeded by the first batch when they are zero; frozen in evaluation. ``N`` is the number
of tokens after the pxp conv.

A freshly built model has zero rates, which would make ``c1`` infinite. We never let
that through: evaluation of an uncalibrated layer raises ``UncalibratedError``; run
:func:`calibrate_firing_rates` (or train) first.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .errors import UncalibratedError
from .layers import BN, SeqConv2d, SpikingMatmul, conv1x1
from .neurons import LIF

RATE_MOMENTUM = 0.999  # official DSSA.momentum


def rate_for_scaling(rate: torch.Tensor) -> torch.Tensor:
    """The rate a scaling factor divides by: a head whose stored rate is exactly 0 uses 1.

    Such a head never fired while its rate was measured; the official code would then
    compute 0 * inf = NaN as soon as it fires. Rate 1 (the smallest scale) is our
    defined substitute; it changes nothing wherever the official result is finite.
    """
    return torch.where(rate > 0, rate, torch.ones_like(rate))


class DSSA(nn.Module):
    """Dual Spike Self-Attention with its residual: ``[T, B, C, H, W] -> same shape``."""

    def __init__(self, dim: int, num_heads: int, lenth: int, patch_size: int, activation=LIF):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.lenth, self.patch_size = dim, num_heads, lenth, patch_size
        self.momentum = RATE_MOMENTUM
        self.register_buffer("firing_rate_x", torch.zeros(1, 1, num_heads, 1, 1))
        self.register_buffer("firing_rate_attn", torch.zeros(1, 1, num_heads, 1, 1))
        # the official code seeds the EMA from the first training batch once per object
        self._seeded = {"firing_rate_x": False, "firing_rate_attn": False}
        self._calib: dict[str, list[torch.Tensor]] | None = None

        self.activation_in = activation()
        self.W = SeqConv2d(dim, dim * 2, patch_size, stride=patch_size)
        self.norm = BN(dim * 2)
        self.matmul1 = SpikingMatmul("r")
        self.matmul2 = SpikingMatmul("r")
        self.activation_attn = activation()
        self.activation_out = activation()
        self.Wproj = conv1x1(dim, dim)
        self.norm_proj = BN(dim)

    @property
    def head_dim(self) -> int:
        """Channels per head, ``d``."""
        return self.dim // self.num_heads

    def _rate(self, name: str, spikes: torch.Tensor) -> torch.Tensor:
        """The per-head firing rate to scale with, updating the buffer as the mode asks."""
        if spikes.device.type == "meta":  # shape-only pass (MAC counting)
            return getattr(self, name)
        if torch.compiler.is_exporting():  # graph capture: exporters check calibration beforehand
            return rate_for_scaling(getattr(self, name))
        measured = spikes.detach().mean((0, 1, 3, 4), keepdim=True)
        if self._calib is not None:
            self._calib[name].append(measured)
            return rate_for_scaling(measured)
        rate = getattr(self, name)
        if self.training:
            # in place, so DistributedDataParallel's buffer broadcast keeps seeing them
            if not self._seeded[name] and torch.all(rate == 0):
                rate.copy_(measured)
            self._seeded[name] = True
            rate.copy_(rate * self.momentum + measured * (1 - self.momentum))
            return rate
        if torch.all(rate == 0):
            raise UncalibratedError(
                f"DSSA {name} buffers are all zero (a freshly built, never trained model): train it "
                "or run sresformer.calibrate_firing_rates(model, batches) before evaluating")
        return rate_for_scaling(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        residual = x
        s = self.activation_in(x)
        y = self.norm(self.W(s))
        y = y.reshape(T, B, self.num_heads, 2 * self.head_dim, -1)
        y1, y2 = y[:, :, :, : self.head_dim, :], y[:, :, :, self.head_dim:, :]
        s = s.reshape(T, B, self.num_heads, self.head_dim, -1)

        scale1 = 1.0 / torch.sqrt(self._rate("firing_rate_x", s) * self.head_dim)
        attn = self.activation_attn(self.matmul1(y1.transpose(-1, -2), s) * scale1)
        scale2 = 1.0 / torch.sqrt(self._rate("firing_rate_attn", attn) * self.lenth)
        out = self.matmul2(y2, attn) * scale2
        out = self.activation_out(out.reshape(T, B, C, H, W))
        return self.norm_proj(self.Wproj(out)) + residual

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, lenth={self.lenth}, patch_size={self.patch_size}"


@contextlib.contextmanager
def _measuring(layers: list[DSSA]):
    for m in layers:
        m._calib = {"firing_rate_x": [], "firing_rate_attn": []}
    try:
        yield
    finally:
        for m in layers:
            m._calib = None


@torch.no_grad()
def calibrate_firing_rates(model: nn.Module, batches) -> int:
    """Set every DSSA layer's firing-rate buffers to the mean rates measured on ``batches``.

    Runs the model in evaluation mode (BN keeps its running statistics); inside a layer
    the scaling factors use the batch's own rates, as the first training step does.
    Returns the number of batches seen. The defined path for a model with zero buffers:
    a head that never fires on ``batches`` stores rate 1 (see :func:`rate_for_scaling`).
    """
    layers = [m for m in model.modules() if isinstance(m, DSSA)]
    was_training = model.training
    model.eval()
    n = 0
    try:
        with _measuring(layers):
            for batch in batches:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(x)
                n += 1
            if n == 0:
                raise ValueError("calibrate_firing_rates needs at least one batch")
            for m in layers:
                for name, rates in m._calib.items():
                    # a head that never fired stores 1: its scale cannot matter on this data
                    getattr(m, name).copy_(rate_for_scaling(torch.stack(rates).mean(0)))
    finally:
        model.train(was_training)
    return n
