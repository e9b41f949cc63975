"""SpikingResformer (Shi, Hao, Yu, CVPR 2024): stem, three stages of DSSA + GWSFFN, head.

Module names equal the official implementation's (``prologue``, ``layers``, ``classifier``)
so its state dicts load unchanged; see ``sresformer.official`` for the import checks.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import DSSA
from .blocks import GWFFN, DownsampleLayer
from .layers import BN, SeqConv2d, SeqLinear, SeqMaxPool2d, init_trunc_normal
from .neurons import LIF


def imagenet_stem(in_channels: int, width: int) -> nn.Sequential:
    """Conv 7x7 stride 2 + BN + max-pool 3x3 stride 2 (input / 4). No neuron: acts on pixels."""
    return nn.Sequential(SeqConv2d(in_channels, width, 7, stride=2, padding=3), BN(width),
                         SeqMaxPool2d(kernel_size=3, stride=2, padding=1))


def small_stem(in_channels: int, width: int) -> nn.Sequential:
    """Conv 3x3 stride 1 + BN (CIFAR and DVS variants: no down-sampling)."""
    return nn.Sequential(SeqConv2d(in_channels, width, 3, stride=1, padding=1), BN(width))


class SpikingResformer(nn.Module):
    """SpikingResformer on images ``[B, C, H, W]`` or frames ``[T, B, C, H, W]`` -> logits ``[B, K]``.

    ``layers[i]`` lists block names (``'DSSA'``, ``'GWFFN'``) of stage i; stages after the
    first start with a stride-2 downsample. ``stem_stride`` is the stem's reduction of
    H and W (4 for the ImageNet stem), needed to size each DSSA's token count N.
    """

    def __init__(self, layers: Sequence[Sequence[str]], planes: Sequence[int], num_heads: Sequence[int],
                 patch_sizes: Sequence[int], img_size: int = 224, T: int = 4, in_channels: int = 3,
                 num_classes: int = 1000, prologue: nn.Module | None = None, stem_stride: int = 4,
                 group_size: int = 64, activation=LIF):
        super().__init__()
        if not len(planes) == len(layers) == len(num_heads) == len(patch_sizes):
            raise ValueError("layers, planes, num_heads and patch_sizes must have one entry per stage")
        self.T = T
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.img_size = img_size
        self.prologue = prologue if prologue is not None else imagenet_stem(in_channels, planes[0])
        size = img_size // stem_stride
        self.layers = nn.Sequential()
        for idx, (width, heads, patch) in enumerate(zip(planes, num_heads, patch_sizes, strict=True)):
            stage = nn.Sequential()
            if idx:
                stage.append(DownsampleLayer(planes[idx - 1], width, stride=2, activation=activation))
                size //= 2
            for name in layers[idx]:
                if name == "DSSA":
                    if size % patch:
                        raise ValueError(f"stage {idx}: feature map {size}x{size} is not divisible "
                                         f"by the DSSA patch size {patch}; choose another img_size")
                    stage.append(DSSA(width, heads, (size // patch) ** 2, patch, activation=activation))
                elif name == "GWFFN":
                    stage.append(GWFFN(width, group_size=group_size, activation=activation))
                else:
                    raise ValueError(f"unknown block {name!r}")
            self.layers.append(stage)
        self.classifier = SeqLinear(planes[-1], num_classes)
        # the official init_weight: convs and linears truncated normal 0.02, BN to identity
        init_trunc_normal(self, (nn.Linear, nn.Conv2d), (nn.BatchNorm2d,))

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The prologue on ``[B, C, H, W]`` (static) or ``[T, B, C, H, W]`` -> ``[T, B, C', H', W']``.

        A static image gives the same stem output at every step, so it is computed once
        and broadcast over T. In training, BN still normalises over the T copies, as
        the official model (which repeats the image) does, so its running statistics
        (unbiased variance over T*B*H*W samples) agree.
        """
        if x.dim() == 5:
            return self.prologue(x)
        if x.dim() != 4:
            raise ValueError(f"expected input [B, C, H, W] or [T, B, C, H, W], got {tuple(x.shape)}")
        y = x.unsqueeze(0)
        for m in self.prologue:
            if isinstance(m, BN) and m.training:
                y = m(y.expand(self.T, *y.shape[1:]))[:1]
            else:
                y = m(y)
        return y.expand(self.T, *y.shape[1:])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and stages: the residual stream ``[T, B, C, H, W]`` before the head."""
        return self.layers(self.stem(x))

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``[T, B, K]`` (the official model's output)."""
        h = self.features(x)
        h = F.adaptive_avg_pool2d(h.flatten(0, 1), 1).flatten(1).unflatten(0, h.shape[:2])
        return self.classifier(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]``: the mean over T of the per-step logits."""
        return self.forward_steps(x).mean(0)

    def no_weight_decay(self) -> set[str]:
        """Parameter names exempt from weight decay (PLIF time constants), as the official code."""
        return {n for n, _ in self.named_parameters() if n.endswith(".w")}
