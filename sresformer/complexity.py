"""Parameter and multiply-accumulate counts per time step, from one shape-only forward.

The forward runs on PyTorch's ``meta`` device (shapes, no arithmetic), so even the large
variants count in well under a second. Counted, per time step and per image:

- convolutions: ``out_elements * (C_in / groups) * kh * kw``;
- linear layers: ``out_elements * in_features``;
- DSSA's two dual-spike matmuls: ``M * K * N`` per head (``SpikingMatmul`` modules).

Not counted: BN (folds into the convs at inference), neurons, pooling, residual additions.
The stem counts once per step like every other layer, so ``macs_per_step * T`` is the dense
figure for an inference, whatever the chip does with the repeated stem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .layers import SpikingMatmul
from .registry import create_model, model_info

COUNTED = "conv + linear + DSSA matmul MACs per time step, one image; BN, neurons, pooling and additions not counted"


@dataclass(frozen=True)
class LayerMacs:
    """Dense multiply-accumulates of one layer for one image and one time step."""

    name: str
    kind: str  # "conv", "linear" or "matmul"
    macs: int


def count_params(model: nn.Module) -> int:
    """Number of trainable and frozen parameters (buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def layer_macs(model: nn.Module, input_shape: tuple[int, ...], T: int = 1) -> list[LayerMacs]:
    """Per-layer dense MACs for one image and one step, from a meta-device forward of ``model``.

    ``input_shape`` is ``(C, H, W)``; ``model`` must already live on the meta device
    (see :func:`macs_for`), and is run in training mode (no calibrated rates needed).
    """
    records: list[LayerMacs] = []

    def hook(name):
        def fn(mod, inputs, out):
            steps_and_batch = T  # batch 1: the leading [T, B] dims hold T elements
            if isinstance(mod, nn.Conv2d):
                k = (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)
                records.append(LayerMacs(name, "conv", out.numel() * k // steps_and_batch))
            elif isinstance(mod, nn.Linear):
                records.append(LayerMacs(name, "linear", out.numel() * mod.in_features // steps_and_batch))
            elif isinstance(mod, SpikingMatmul):
                left = inputs[0]
                records.append(LayerMacs(name, "matmul", out.numel() * left.shape[-1] // steps_and_batch))
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, SpikingMatmul))]
    try:
        model.train()
        with torch.no_grad():
            model(torch.zeros(T, 1, *input_shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return records


def macs_for(name: str, **kwargs) -> list[LayerMacs]:
    """Per-layer MACs per step for registered model ``name`` at its (or the given) input size."""
    info = model_info(name)
    img = kwargs.get("img_size", info.img_size)
    with torch.device("meta"):
        model = create_model(name, T=1, **kwargs)
    return layer_macs(model, (info.in_channels, img, img))


def describe(name: str) -> dict:
    """Registry row for ``name``: params, MACs per step at the default input, input size, classes."""
    info = model_info(name)
    with torch.device("meta"):
        params = count_params(create_model(name))
    return {"name": name, "params": params, "macs_per_step": sum(r.macs for r in macs_for(name)),
            "img_size": info.img_size, "num_classes": info.num_classes, "T": info.T,
            "in_channels": info.in_channels, "family": info.family, "description": info.description}
