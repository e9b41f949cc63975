"""AdamW with the official split of parameters into decayed and not decayed.

The official code builds its optimizer with timm's ``create_optimizer_v2(model, 'adamw',
lr, weight_decay)``, whose default ``filter_bias_and_bn=True`` exempts from weight
decay every parameter with ``ndim <= 1`` (BatchNorm weights and biases, biases, PLIF's
scalar ``w``), every name ending in ``.bias`` and every name in
``model.no_weight_decay()``. We make the same choice.
"""

from __future__ import annotations

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW param groups: ``[{decayed, weight_decay}, {exempt, weight_decay: 0}]``."""
    model = getattr(model, "module", model)
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, exempt = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias") or name in skip:
            exempt.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": float(weight_decay)},
            {"params": exempt, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW (betas 0.9/0.999, eps 1e-8, timm's and torch's defaults) over :func:`param_groups`."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
