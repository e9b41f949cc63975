"""A convolution (ours: torch correlation on ``[C, H, W]``) as the entries of a sparse ``out x in`` matrix.

Lava's ``Conv`` holds ``groups`` (and its geometry) in int8 (``conv/models.py``): a grouped conv of 128 or more
groups, and a sum pool over as many channels, run as a ``Sparse`` process with these entries instead.
"""

from __future__ import annotations

import numpy as np


def conv_entries(w: np.ndarray, in_shape, out_shape, stride, padding, dilation, groups: int):
    """``(rows, cols, vals)``: ours flat output index, ours flat input index and weight of every tap of the conv
    with weights ``w [C_out, C_in / groups, kh, kw]`` (taps falling in the padding dropped)."""
    C, H, W = in_shape
    Co, Ho, Wo = out_shape
    cin_g, cout_g = C // groups, Co // groups
    co, oh, ow = (x.reshape(-1) for x in np.meshgrid(np.arange(Co), np.arange(Ho), np.arange(Wo), indexing="ij"))
    rows, cols, vals = [], [], []
    for j in range(cin_g):
        ci = co // cout_g * cin_g + j
        for ky in range(w.shape[2]):
            for kx in range(w.shape[3]):
                ih = oh * stride[0] - padding[0] + ky * dilation[0]
                iw = ow * stride[1] - padding[1] + kx * dilation[1]
                ok = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                rows.append(((co * Ho + oh) * Wo + ow)[ok])
                cols.append(((ci * H + ih) * W + iw)[ok])
                vals.append(w[co[ok], j, ky, kx])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals).astype(np.int64)
