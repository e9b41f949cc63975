"""torch -> NIR: SpikingResformer as nested graphs per block, simple spiking chains as flat graphs.

One time step of the network is one evaluation of the NIR graph; neurons carry state
between steps. Shapes in NIR exclude batch and time (``[C, H, W]``, ``[F]``).

- Convs and the classifier: ``Conv2d`` (BN folded in, float64 then float32; a grouped conv
  written dense with ``metadata['sresformer.groups']``), ``Linear``.
- Neurons: ``LIF`` / ``IF`` in NIR's continuous-time form (``convention.lif_params``).
- Residual adds: an identity ``Scale(ones)`` node named ``add`` that both streams enter
  (NIR sums every edge entering a node; a real node, not the Output, does the sum).
- DSSA's dual-spike matmuls and the stem's max-pool: the extension in ``extension.py``.
- Spikformer: ``export_spikformer.py`` (its SSA products are more extension forms).
- The node-building helpers both use: ``graph_builder.py``.
- Head: ``AvgPool2d`` over the whole map, ``Flatten``, ``Linear``.
"""

from __future__ import annotations

import os

import nir
import numpy as np
import torch
from torch import nn

from sresformer.attention import DSSA, rate_for_scaling
from sresformer.blocks import GWFFN, DownsampleLayer
from sresformer.errors import UncalibratedError
from sresformer.fileio import atomic_path
from sresformer.ma_attention import MultiDimAttention
from sresformer.model import SpikingResformer

from . import convention as cv
from .extension import dual_spike_matmul_graph
from .graph_builder import GraphBuilder, add_chain, add_residual, root_metadata


def _dssa_scales(m: DSSA) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head c1, c2 (float32, [heads]) computed with the model's own expression."""
    for name in ("firing_rate_x", "firing_rate_attn"):
        if torch.all(getattr(m, name) == 0):
            raise UncalibratedError(f"DSSA {name} buffers are all zero (a never trained model): train it or run "
                                    "sresformer.calibrate_firing_rates(model, batches) before exporting")
    c1 = 1.0 / torch.sqrt(rate_for_scaling(m.firing_rate_x) * m.head_dim)
    c2 = 1.0 / torch.sqrt(rate_for_scaling(m.firing_rate_attn) * m.lenth)
    return c1.flatten(), c2.flatten()


def _dssa(m: DSSA, shape, dt: float) -> GraphBuilder:
    """DSSA with its residual (eq. 8-11): standard nodes around the two extension products."""
    g = GraphBuilder(shape)
    C, H, W = shape
    heads, d = m.num_heads, m.head_dim
    c1, c2 = _dssa_scales(m)
    s = add_chain(g, [("activation_in", m.activation_in)], "input", dt)
    y = add_chain(g, [("W", m.W), ("norm", m.norm)], s, dt)
    n_tok = int(np.prod(g.shapes[y][1:]))
    attn_shape = (heads * n_tok, H, W)
    mm1 = g.add("matmul1", dual_spike_matmul_graph("y1T@s", heads, y, s, g.shapes[y], attn_shape), attn_shape, y)
    sc1 = g.add("scale1",
                nir.Scale(scale=np.repeat(c1.numpy(), n_tok)[:, None, None] * np.ones(attn_shape, np.float32)),
                attn_shape, mm1)
    a = add_chain(g, [("activation_attn", m.activation_attn)], sc1, dt)
    mm2 = g.add("matmul2", dual_spike_matmul_graph("y2@a", heads, y, a, attn_shape, shape), shape, a)
    sc2 = g.add("scale2", nir.Scale(scale=np.repeat(c2.numpy(), d)[:, None, None] * np.ones(shape, np.float32)),
                shape, mm2)
    o = add_chain(g, [("activation_out", m.activation_out), ("Wproj", m.Wproj), ("norm_proj", m.norm_proj)], sc2, dt)
    add_residual(g, "add", o, "input")
    g.extensions.add(cv.DUAL_SPIKE_MATMUL)
    return g


def _gwffn(m: GWFFN, shape, dt: float) -> GraphBuilder:
    """GWSFFN: ``up``, grouped convs with the inner residual, ``down`` with the outer one."""
    g = GraphBuilder(shape)
    up = add_chain(g, [("up", m.up)], "input", dt)
    z = add_chain(g, [(f"conv.{i}", c) for i, c in enumerate(m.conv)], up, dt)
    z = add_residual(g, "add_inner", z, up)
    z = add_chain(g, [("down", m.down)], z, dt)
    add_residual(g, "add", z, "input")
    return g


def _block(m: nn.Module, shape, dt: float) -> tuple[GraphBuilder, str]:
    if isinstance(m, DSSA):
        return _dssa(m, shape, dt), "DSSA"
    if isinstance(m, GWFFN):
        return _gwffn(m, shape, dt), "GWFFN"
    if isinstance(m, DownsampleLayer):
        g = GraphBuilder(shape)
        add_chain(g, [("activation", m.activation), ("conv", m.conv), ("norm", m.norm)], "input", dt)
        return g, "DownsampleLayer"
    raise ValueError(f"no NIR mapping for block {type(m).__name__}")


def check_lowerable_attention(model: nn.Module) -> None:
    """NIRError (one line) for an MA gate that needs future time steps: NIR (and a chip) runs step by step."""
    for name, m in model.named_modules():
        if not isinstance(m, MultiDimAttention) or m.causal:
            continue
        block = name.rsplit(".", 2)[0]
        if m.ta is not None:
            raise cv.NIRError(f"block {block}: temporal attention (TA) gates step t with an MLP over all T steps "
                              "of its input, which a step-by-step chip cannot run; train with attention='cs' "
                              "(per-step channel + spatial gates) to export")
        raise cv.NIRError(f"block {block}: attention_pool='sequence' pools the gates over all T steps, which a "
                          "step-by-step chip cannot run; train with attention_pool='step' to export")


@torch.no_grad()
def model_to_nir(model: SpikingResformer, dt: float = 1.0, T: int | None = None) -> nir.NIRGraph:
    """SpikingResformer (eval mode, calibrated) as a NIR graph of one time step.

    Input ``[C, H, W]`` (one image, repeated over ``T`` steps by the reader), output the
    per-step logits ``[K]``; the logits are the mean over T (``metadata['readout']``).
    ``dt`` is the length of one step in the file's time unit.
    """
    from sresformer.spikformer import Spikformer

    if isinstance(model, Spikformer):
        from .export_spikformer import spikformer_to_nir

        return spikformer_to_nir(model, dt=dt, T=T)
    if getattr(model, "softmax", False) is True:   # the MST family's mst_nano_softmax (sresformer.mst)
        raise cv.NIRError(f"{getattr(model, 'model_name', type(model).__name__)} uses softmax attention, which no "
                          "spiking chip computes: it runs on the host only (train mst_nano, softmax-free, to export)")
    from sresformer.mst import MST

    if isinstance(model, MST):
        from .export_mst import mst_to_nir

        return mst_to_nir(model, dt=dt, T=T)
    if not isinstance(model, SpikingResformer):
        raise cv.NIRError(f"NIR export of {type(model).__name__} is not supported yet (SpikingResformer, Spikformer "
                          "and simple layer chains only)")
    model.eval()
    check_lowerable_attention(model)
    shape = (model.in_channels, model.img_size, model.img_size)
    top = GraphBuilder(shape)
    stem = GraphBuilder(shape)
    add_chain(stem, model.prologue.named_children(), "input", dt)
    src = top.add_graph("prologue", stem, "input", {"sresformer.block": "prologue"})
    for si, stage in enumerate(model.layers):
        for bi, block in enumerate(stage):
            sub, kind = _block(block, top.shapes[src], dt)
            src = top.add_graph(f"layers.{si}.{bi}", sub, src, {"sresformer.block": kind})
    return close_with_readout(top, src, "classifier", model.classifier, model, T, dt)


def close_with_readout(top, src: str, name: str, head, model, T, dt):
    """The built graph: ``src`` average-pooled over its map, flattened and read out by ``head`` (node
    ``name``), with the root metadata of a static-input model whose logits are averaged over T steps."""
    c, h, w = top.shapes[src]
    add_chain(top, [("avgpool", nn.AvgPool2d((h, w))), ("flatten", nn.Flatten()), (name, head)], src, dt)
    meta = root_metadata(top.extensions, dt, **{cv.KEY_T: int(T or model.T), cv.KEY_INPUT: "static",
                                                 cv.KEY_READOUT: "mean_over_T", "model": type(model).__name__,
                                                 "img_size": int(model.img_size),
                                                 "in_channels": int(model.in_channels),
                                                 "num_classes": int(model.num_classes)})
    return top.build(meta)


@torch.no_grad()
def export_graph(module: nn.Module, input_shape, dt: float = 1.0, metadata: dict | None = None) -> nir.NIRGraph:
    """A flat NIR graph for a chain of simple per-step modules (``nn.Sequential`` or one module).

    Supported: Conv2d (+ a following BN, folded), Linear, LIF/PLIF/IF, MaxPool2d (extension),
    AvgPool2d, LPPool2d(norm_type=1) as SumPool2d, Flatten, Identity. ``input_shape``
    excludes batch and time; ``dt`` is the step in file time units (use 1e-4 for graphs
    that snntorch must read: it fixes dt = 1e-4).
    """
    g = GraphBuilder(tuple(input_shape))
    children = module.named_children() if isinstance(module, nn.Sequential) else [("0", module)]
    add_chain(g, children, "input", dt)
    return g.build(root_metadata(g.extensions, dt, **(metadata or {})))


def write_graph(graph: nir.NIRGraph, path: str | os.PathLike) -> None:
    """``nir.write`` to a temporary file beside ``path``, renamed onto it only when complete."""
    with atomic_path(path) as tmp:
        # gzip level 1: any HDF5 reader has gzip; the dense form of grouped convs is mostly
        # zeros, which level 1 already squeezes, at a third of the default level's time
        nir.write(str(tmp), graph, compression="gzip", compression_opts=1)


def export(model: nn.Module, path: str | os.PathLike, dt: float = 1.0, input_shape=None,
           T: int | None = None) -> nir.NIRGraph:
    """Write ``model`` as a NIR file at ``path`` (atomically) and return the graph.

    A SpikingResformer needs nothing else; any other chain of simple modules needs
    ``input_shape`` (per sample, no batch or time). ``dt``: one step in file time units.
    """
    from sresformer.mst import MST
    from sresformer.spikformer import Spikformer

    if isinstance(model, (SpikingResformer, Spikformer, MST)):
        graph = model_to_nir(model, dt=dt, T=T)
    elif input_shape is None:
        raise cv.NIRError(f"NIR export of {type(model).__name__} is not supported yet (SpikingResformer, Spikformer "
                          "and simple layer chains only)")
    else:
        graph = export_graph(model, input_shape, dt=dt)
    write_graph(graph, path)
    return graph
