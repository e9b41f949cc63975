"""BatchNorm folding and grouped-conv expansion, in float64 before the final float32 cast.

Evaluation-mode BN after a conv is an affine map per output channel::

    BN(conv(x)) = (W*x + b - mean) * g + beta,     g = gamma / sqrt(var + eps)
                = (W g) * x + ((b - mean) g + beta)

so it folds into the conv's weight and bias. Folding in float64 and casting once keeps the
folded parameters within half an ulp of the exact values; what remains is the rounding
of the conv itself, which runs in a different order than conv-then-BN (see FORMAT.md).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    """Weight ``[C_out, C_in/groups, kh, kw]`` and bias ``[C_out]`` (float32) of ``bn(conv(x))``.

    ``bn`` may be None (the conv alone; a missing bias becomes zeros). Raises ValueError
    for a BN in training mode or one that tracks no running statistics, whose output
    depends on the batch and cannot be folded.
    """
    w = _f64(conv.weight)
    b = _f64(conv.bias) if conv.bias is not None else np.zeros(w.shape[0])
    if bn is not None:
        if bn.training or bn.running_mean is None:
            raise ValueError("BatchNorm must be in eval mode with running statistics to fold")
        gamma = _f64(bn.weight) if bn.weight is not None else np.ones(w.shape[0])
        beta = _f64(bn.bias) if bn.bias is not None else np.zeros(w.shape[0])
        g = gamma / np.sqrt(_f64(bn.running_var) + bn.eps)  # eq. above
        w = w * g[:, None, None, None]
        b = (b - _f64(bn.running_mean)) * g + beta
    return w.astype(np.float32), b.astype(np.float32)


def dense_from_groups(weight: np.ndarray, groups: int) -> np.ndarray:
    """The ``groups = 1`` weight ``[C_out, C_in, kh, kw]`` equal to a grouped conv's.

    Output channel block ``j`` (``C_out/groups`` channels) sees only input block ``j``; every
    other entry is exactly zero, so the dense conv computes the same sums. NIR 1.0's
    Conv2d takes its input channel count from ``weight.shape[1]`` and ignores ``groups``,
    so a grouped conv would fail NIR's own type check; the dense form passes it.
    """
    if groups == 1:
        return weight
    c_out, c_in_g, kh, kw = weight.shape
    out_g = c_out // groups
    dense = np.zeros((c_out, c_in_g * groups, kh, kw), dtype=weight.dtype)
    for j in range(groups):
        dense[j * out_g:(j + 1) * out_g, j * c_in_g:(j + 1) * c_in_g] = weight[j * out_g:(j + 1) * out_g]
    return dense


def groups_of_dense(weight: np.ndarray, groups: int) -> np.ndarray | None:
    """Inverse of :func:`dense_from_groups`: the grouped weight, or None if any off-block entry is non-zero."""
    c_out, c_in = weight.shape[:2]
    if groups < 1 or c_out % groups or c_in % groups:
        return None
    out_g, in_g = c_out // groups, c_in // groups
    blocks = weight.reshape(groups, out_g, groups, in_g, *weight.shape[2:]).swapaxes(1, 2)
    if np.any(blocks[~np.eye(groups, dtype=bool)]):  # off-diagonal [g_out, g_in] blocks must be exactly zero
        return None
    return np.concatenate([blocks[j, j] for j in range(groups)], axis=0)
