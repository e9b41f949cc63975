"""The convolutional parts of SpikingResformer: GWSFFN and the downsample layer.

Every branch starts with its neuron, then conv, then BN, so the residual stream that
the blocks add to stays real-valued (not spikes).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import BN, conv1x1, conv3x3
from .neurons import LIF


class GWFFN(nn.Module):
    """Group-Wise Spiking Feed-Forward Network (paper: GWSFFN), with both residuals.

    ``up = BN(Conv1x1(LIF(x)))`` (C -> ratio*C); ``z = BN(GConv3x3(LIF(up))) + up``
    (groups of ``group_size`` channels); ``out = BN(Conv1x1(LIF(z))) + x``.
    Attribute names follow the official ``GWFFN`` so its checkpoints load unchanged.
    """

    def __init__(self, in_channels: int, num_conv: int = 1, ratio: int = 4, group_size: int = 64,
                 activation=LIF):
        super().__init__()
        inner = in_channels * ratio
        self.up = nn.Sequential(activation(), conv1x1(in_channels, inner), BN(inner))
        self.conv = nn.ModuleList(
            nn.Sequential(activation(), conv3x3(inner, inner, groups=inner // group_size), BN(inner))
            for _ in range(num_conv))
        self.down = nn.Sequential(activation(), conv1x1(inner, in_channels), BN(in_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        z = up
        for m in self.conv:
            z = m(z)
        return self.down(z + up) + x


GWSFFN = GWFFN


class DownsampleLayer(nn.Module):
    """``BN(Conv3x3 stride 2(LIF(x)))``: halves H and W, changes the width."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, activation=LIF):
        super().__init__()
        self.conv = conv3x3(in_channels, out_channels, stride=stride)
        self.norm = BN(out_channels)
        self.activation = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self.activation(x)))
