"""Stateless layers applied to every time step of a ``[T, B, ...]`` sequence.

Each folds T into the batch, runs the ordinary layer and unfolds (SpikingJelly's
``seq_to_ann_forward``, which the official code uses): BatchNorm therefore normalises
over T x B x H x W in training. Parameter names equal the official ones so its
state dicts load unchanged (BN keeps its wrapped ``.bn``).
"""

from __future__ import annotations

import torch
from torch import nn


def seq_apply(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a per-sample module to ``[T, B, ...]`` by folding T into the batch."""
    y = module(x.flatten(0, 1))
    return y.unflatten(0, x.shape[:2])


class SeqConv2d(nn.Conv2d):
    """``nn.Conv2d`` on ``[T, B, C, H, W]`` (no bias by default, as in the official model)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, bias=False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def conv1x1(cin: int, cout: int) -> SeqConv2d:
    """1x1 convolution, stride 1, no bias."""
    return SeqConv2d(cin, cout, 1)


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> SeqConv2d:
    """3x3 convolution, padding 1, no bias."""
    return SeqConv2d(cin, cout, 3, stride=stride, padding=1, groups=groups)


class BN(nn.Module):
    """BatchNorm2d (eps 1e-5, momentum 0.1) over ``[T, B, C, H, W]``, statistics over T*B*H*W."""

    def __init__(self, num_features: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps=1e-5, momentum=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"BN expects [T, B, C, H, W], got shape {tuple(x.shape)}")
        return seq_apply(self.bn, x)


class SeqMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` on ``[T, B, C, H, W]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class SeqLinear(nn.Linear):
    """``nn.Linear`` on ``[T, B, F]`` (no bias by default, as the official classifier)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__(in_features, out_features, bias=bias)


class SpikingMatmul(nn.Module):
    """``left @ right`` where one operand is binary spikes: accumulate-only on a chip.

    ``spike`` names the binary side (``'l'``, ``'r'`` or ``'both'``); a module of its own
    so that counters and the exporters can find the dual-spike products by type.
    """

    def __init__(self, spike: str = "r"):
        super().__init__()
        if spike not in ("l", "r", "both"):
            raise ValueError(f"spike must be 'l', 'r' or 'both', got {spike!r}")
        self.spike = spike

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return torch.matmul(left, right)

    def extra_repr(self) -> str:
        return f"spike={self.spike!r}"


def init_trunc_normal(model: nn.Module, weighted: tuple[type, ...], norms: tuple[type, ...], std: float = 0.02) -> None:
    """The official codes' init: ``weighted`` layers truncated normal (``std``) with zero bias,
    ``norms`` (BN / LayerNorm) to the identity; every other module keeps PyTorch's default."""
    for m in model.modules():
        if isinstance(m, weighted):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, norms):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
