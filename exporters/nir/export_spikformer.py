"""torch -> NIR for Spikformer (``sresformer.spikformer``), both layouts, as nested graphs.

Every value is written channel-major ``[C, H, W]``: the token layout's ``[N, C]`` tokens are
the same numbers with ``N = H * W`` (the model flattens the SPS map row by row), so its
linear layers are 1x1 ``Conv2d`` nodes (BN1d folded in like BN2d) and both layouts share
one graph structure:

- ``patch_embed`` (SPS): conv-BN folded, ``LIF``, max-pool (extension) per stage, then
  the relative-position residual ``x + LIF(BN(conv3x3(x)))`` as an identity ``Scale``
  node ``add`` that both streams enter.
- ``block.<i>``: ``q``/``k``/``v`` units (1x1 conv with BN folded, ``LIF``), the two SSA
  products (``sresformer.dual_spike_matmul`` forms ``kT@v`` + ``q@kv`` for the conv layout,
  ``q@kT`` + ``qk@v`` for the token layout), ``Scale(0.125)``, ``attn_lif`` (threshold
  0.5), the ``proj`` unit, residual ``add``; the MLP's ``fc1``/``fc2`` units, residual
  ``add2``. Residual sums here add spikes: the stream holds small non-negative integers.
- head: ``AvgPool2d`` over the map (the model's mean over tokens), ``Flatten``, ``Affine``.

The scale 0.125 sits after the second product in both layouts; the token model scales
between the products, which is the same number exactly (a power of two on integers).
"""

from __future__ import annotations

import nir
import numpy as np
import torch
from torch import nn

from sresformer.spikformer import SPS, Spikformer

from . import convention as cv
from .extension import dual_spike_matmul_graph
from .graph_builder import GraphBuilder, add_chain, add_conv, add_residual, root_metadata


def _as_conv1x1(linear: nn.Linear) -> nn.Conv2d:
    """The 1x1 conv that applies ``linear`` to every position of ``[C, H, W]`` (same parameters)."""
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None)
    conv.weight.data = linear.weight.detach()[:, :, None, None].clone()
    if linear.bias is not None:
        conv.bias.data = linear.bias.detach().clone()
    return conv.eval()


def _unit(g: GraphBuilder, owner: nn.Module, name: str, src: str, dt: float) -> str:
    """``<name>_conv|linear`` with ``<name>_bn`` folded, then ``<name>_lif``."""
    conv = getattr(owner, f"{name}_conv", None)
    if conv is None:
        conv = _as_conv1x1(getattr(owner, f"{name}_linear"))
    y = add_conv(g, f"{name}_conv", conv, getattr(owner, f"{name}_bn"), src)
    return add_chain(g, [(f"{name}_lif", getattr(owner, f"{name}_lif"))], y, dt)


def _sps(m: SPS, shape, dt: float) -> GraphBuilder:
    g = GraphBuilder(shape)
    src = "input"
    for sfx in SPS.SUFFIXES:
        mods = [(f"proj_conv{sfx}", getattr(m, f"proj_conv{sfx}")), (f"proj_bn{sfx}", getattr(m, f"proj_bn{sfx}")),
                (f"proj_lif{sfx}", getattr(m, f"proj_lif{sfx}"))]
        if hasattr(m, f"maxpool{sfx}"):
            mods.append((f"maxpool{sfx}", getattr(m, f"maxpool{sfx}")))
        src = add_chain(g, mods, src, dt)
    rpe = add_chain(g, [("rpe_conv", m.rpe_conv), ("rpe_bn", m.rpe_bn), ("rpe_lif", m.rpe_lif)], src, dt)
    add_residual(g, "add", src, rpe)
    return g


def _block(blk: nn.Module, shape, dt: float) -> GraphBuilder:
    """One Spikformer block: ``x + SSA(x)``, then ``+ MLP``, as a nested graph."""
    g = GraphBuilder(shape)
    attn = blk.attn
    heads, (C, H, W) = attn.num_heads, shape
    d, n_tok = C // heads, H * W
    q, k, v = (_unit(g, attn, n, "input", dt) for n in ("q", "k", "v"))
    # the first product's edges come from all of Q, K, V (their sum is ignored; every node
    # keeps an out-edge, as NIR's type inference needs), the second's from the first
    if attn.layout == "conv":   # Q (K^T V): K^T V first, both binary
        mid = (heads * d, d, 1)
        first, second, ops1, ops2 = "kT@v", "q@kv", (k, v), q
    else:                       # (Q K^T) V: Q K^T first, both binary
        mid = (heads * n_tok, H, W)
        first, second, ops1, ops2 = "q@kT", "qk@v", (q, k), v
    mm1 = g.add("matmul1", dual_spike_matmul_graph(first, heads, *ops1, shape, mid), mid, q, k, v)
    mm2 = g.add("matmul2", dual_spike_matmul_graph(second, heads, mm1, ops2, mid, shape), shape, mm1)
    sc = g.add("scale", nir.Scale(scale=np.full(shape, attn.scale, np.float32)), shape, mm2)
    a = add_chain(g, [("attn_lif", attn.attn_lif)], sc, dt)
    x1 = add_residual(g, "add", "input", _unit(g, attn, "proj", a, dt))
    h = _unit(g, blk.mlp, "fc1", x1, dt)
    add_residual(g, "add2", x1, _unit(g, blk.mlp, "fc2", h, dt))
    g.extensions.add(cv.DUAL_SPIKE_MATMUL)
    return g


@torch.no_grad()
def spikformer_to_nir(model: Spikformer, dt: float = 1.0, T: int | None = None) -> nir.NIRGraph:
    """Spikformer (eval mode) as a NIR graph of one time step: input ``[C, H, W]``, per-step logits ``[K]``
    (the logits are their mean over T, ``metadata['readout']``)."""
    model.eval()
    shape = (model.in_channels, model.img_size, model.img_size)
    top = GraphBuilder(shape)
    src = top.add_graph("patch_embed", _sps(model.patch_embed, shape, dt), "input", {"sresformer.block": "SPS"})
    for i, blk in enumerate(model.block):
        src = top.add_graph(f"block.{i}", _block(blk, top.shapes[src], dt), src,
                            {"sresformer.block": "SpikformerBlock"})
    c, h, w = top.shapes[src]
    add_chain(top, [("avgpool", nn.AvgPool2d((h, w))), ("flatten", nn.Flatten()), ("head", model.head)], src, dt)
    meta = root_metadata(top.extensions, dt, **{cv.KEY_T: int(T or model.T), cv.KEY_INPUT: "static",
                                                 cv.KEY_READOUT: "mean_over_T", "model": type(model).__name__,
                                                 "layout": model.layout, "img_size": int(model.img_size),
                                                 "in_channels": int(model.in_channels),
                                                 "num_classes": int(model.num_classes)})
    return top.build(meta)
