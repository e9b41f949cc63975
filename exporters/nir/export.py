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
- Head: ``AvgPool2d`` over the whole map, ``Flatten``, ``Linear``.
"""

from __future__ import annotations

import os
from typing import Iterable

import nir
import numpy as np
import torch
from torch import nn

from sresformer.attention import DSSA, rate_for_scaling
from sresformer.blocks import GWFFN, DownsampleLayer
from sresformer.errors import UncalibratedError
from sresformer.fileio import atomic_path
from sresformer.layers import BN
from sresformer.ma_attention import MultiDimAttention
from sresformer.masking import spike_mask_of
from sresformer.model import SpikingResformer
from sresformer.neurons import IF, LIF, PLIF

from . import convention as cv
from .extension import attention_gate_graph, dual_spike_matmul_graph, max_pool2d_graph, spike_mask_graph
from .fold import dense_from_groups, fold_conv_bn


def _pair(v) -> tuple[int, int]:
    return tuple(int(x) for x in (v if isinstance(v, (tuple, list)) else (v, v)))


class _Graph:
    """Nodes and edges of one (nested) graph under construction, with each node's output shape."""

    def __init__(self, in_shape):
        self.nodes = {"input": nir.Input(np.array(in_shape))}
        self.edges: list[tuple[str, str]] = []
        self.shapes = {"input": tuple(int(s) for s in in_shape)}
        self.extensions: set[str] = set()

    def add(self, name: str, node, shape, *sources: str) -> str:
        if name in self.nodes:
            raise ValueError(f"duplicate NIR node name {name!r}")
        self.nodes[name] = node
        self.shapes[name] = tuple(int(s) for s in shape)
        self.edges += [(src, name) for src in sources]
        return name

    def add_graph(self, name: str, sub: "_Graph", source: str, metadata=None) -> str:
        self.extensions |= sub.extensions
        return self.add(name, sub.build(metadata), sub.shapes["output"], source)

    def build(self, metadata=None, last: str | None = None) -> nir.NIRGraph:
        """Close the graph with an Output fed by ``last`` (the last added node by default)."""
        if "output" not in self.nodes:
            last = last or list(self.nodes)[-1]
            self.add("output", nir.Output(np.array(self.shapes[last])), self.shapes[last], last)
        return nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=dict(metadata or {}))


def _neuron(m: nn.Module, shape, dt: float):
    """The NIR node for one of our neurons at a layer of per-sample ``shape``."""
    if isinstance(m, (LIF, PLIF)):
        return nir.LIF(**cv.lif_params(m.tau, m.v_threshold, tuple(shape), dt))
    if isinstance(m, IF):
        # NIR IF: v += r*I per step (no dt factor; as norse reads it), hard reset
        return nir.IF(r=np.ones(shape), v_threshold=np.full(shape, cv.strict_threshold(m.v_threshold), np.float32),
                      v_reset=np.zeros(shape, np.float32))
    raise TypeError(f"not a neuron: {type(m).__name__}")


def _conv(g: _Graph, name: str, conv: nn.Conv2d, bn, src: str) -> str:
    weight, bias = fold_conv_bn(conv, bn.bn if isinstance(bn, BN) else bn)
    c, h, w = g.shapes[src]
    k, s, p, dil = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.padding), _pair(conv.dilation)
    out = (weight.shape[0],) + tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                                     for n, kk, ss, pp, dd in zip((h, w), k, s, p, dil))
    meta = {"sresformer.groups": int(conv.groups)} if conv.groups > 1 else {}
    node = nir.Conv2d(input_shape=(h, w), weight=dense_from_groups(weight, conv.groups), stride=s, padding=p,
                      dilation=dil, groups=1, bias=bias, metadata=meta)
    return g.add(name, node, out, src)


def _chain(g: _Graph, modules: Iterable[tuple[str, nn.Module]], src: str, dt: float) -> str:
    """Append a chain of simple per-step modules after ``src``; a BN folds into the conv before it."""
    items = list(modules)
    i = 0
    while i < len(items):
        name, m = items[i]
        nxt = items[i + 1][1] if i + 1 < len(items) else None
        if isinstance(m, nn.Sequential):
            src = _chain(g, [(f"{name}.{n}", c) for n, c in m.named_children()], src, dt)
        elif isinstance(m, nn.Conv2d):
            bn = nxt if isinstance(nxt, (BN, nn.BatchNorm2d)) else None
            src = _conv(g, name, m, bn, src)
            i += bn is not None
        elif isinstance(m, (LIF, PLIF, IF)):
            src = g.add(name, _neuron(m, g.shapes[src], dt), g.shapes[src], src)
            gate = spike_mask_of(m)
            if gate is not None and gate.ratio > 0:   # every reader of the neuron reads the gated spikes
                g.extensions.add(cv.SPIKE_MASK)
                src = g.add(f"{name}.mask", spike_mask_graph(g.shapes[src], gate.ratio, gate.seed, gate.gate_id),
                            g.shapes[src], src)
        elif isinstance(m, nn.MaxPool2d):
            sub = max_pool2d_graph(g.shapes[src], m.kernel_size, m.stride or m.kernel_size, m.padding)
            if _pair(m.dilation) != (1, 1) or m.ceil_mode:
                raise ValueError(f"{name}: only dilation 1, floor-mode max-pooling is supported")
            g.extensions.add(cv.MAX_POOL2D)
            src = g.add(name, sub, sub.nodes["output"].output_type["output"], src)
        elif isinstance(m, (nn.AvgPool2d, nn.LPPool2d)):
            if isinstance(m, nn.LPPool2d) and float(m.norm_type) != 1.0:
                raise ValueError(f"{name}: only LPPool2d(norm_type=1) (sum pooling) has a NIR node")
            k = _pair(m.kernel_size)
            s = _pair(m.stride or m.kernel_size)
            p = _pair(getattr(m, "padding", 0))
            c, h, w = g.shapes[src]
            out = (c,) + tuple((n + 2 * pp - kk) // ss + 1 for n, kk, ss, pp in zip((h, w), k, s, p))
            cls = nir.SumPool2d if isinstance(m, nn.LPPool2d) else nir.AvgPool2d
            src = g.add(name, cls(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p)), out, src)
        elif isinstance(m, nn.Flatten):
            # torch's dims count the batch; NIR's do not
            start = m.start_dim - 1 if m.start_dim > 0 else m.start_dim
            end = m.end_dim - 1 if m.end_dim > 0 else m.end_dim
            shape = g.shapes[src]
            node = nir.Flatten(input_type=np.array(shape), start_dim=start, end_dim=end)
            src = g.add(name, node, node.output_type["output"], src)
        elif isinstance(m, nn.Linear):
            weight = m.weight.detach().cpu().numpy().astype(np.float32)
            node = (nir.Affine(weight=weight, bias=m.bias.detach().cpu().numpy().astype(np.float32))
                    if m.bias is not None else nir.Linear(weight=weight))
            src = g.add(name, node, (weight.shape[0],), src)
        elif isinstance(m, MultiDimAttention):
            sub = attention_gate_graph(g.shapes[src], m)
            g.extensions.add(cv.ATTENTION_GATE)
            src = g.add(name, sub, g.shapes[src], src)
        elif isinstance(m, nn.Identity):
            pass
        else:
            raise ValueError(f"{name}: no NIR mapping for {type(m).__name__}")
        i += 1
    return src


def _add(g: _Graph, name: str, *sources: str) -> str:
    """A residual sum: an identity Scale(ones) that every source stream enters."""
    shape = g.shapes[sources[0]]
    return g.add(name, nir.Scale(scale=np.ones(shape, dtype=np.float32)), shape, *sources)


def _dssa_scales(m: DSSA) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head c1, c2 (float32, [heads]) computed with the model's own expression."""
    for name in ("firing_rate_x", "firing_rate_attn"):
        if torch.all(getattr(m, name) == 0):
            raise UncalibratedError(f"DSSA {name} buffers are all zero (a never trained model): train it or run "
                                    "sresformer.calibrate_firing_rates(model, batches) before exporting")
    c1 = 1.0 / torch.sqrt(rate_for_scaling(m.firing_rate_x) * m.head_dim)
    c2 = 1.0 / torch.sqrt(rate_for_scaling(m.firing_rate_attn) * m.lenth)
    return c1.flatten(), c2.flatten()


def _dssa(m: DSSA, shape, dt: float) -> _Graph:
    """DSSA with its residual (eq. 8-11): standard nodes around the two extension products."""
    g = _Graph(shape)
    C, H, W = shape
    heads, d = m.num_heads, m.head_dim
    c1, c2 = _dssa_scales(m)
    s = _chain(g, [("activation_in", m.activation_in)], "input", dt)
    y = _chain(g, [("W", m.W), ("norm", m.norm)], s, dt)
    n_tok = int(np.prod(g.shapes[y][1:]))
    attn_shape = (heads * n_tok, H, W)
    mm1 = g.add("matmul1", dual_spike_matmul_graph("y1T@s", heads, y, s, g.shapes[y], attn_shape), attn_shape, y)
    sc1 = g.add("scale1", nir.Scale(scale=np.repeat(c1.numpy(), n_tok)[:, None, None] * np.ones(attn_shape, np.float32)),
                attn_shape, mm1)
    a = _chain(g, [("activation_attn", m.activation_attn)], sc1, dt)
    mm2 = g.add("matmul2", dual_spike_matmul_graph("y2@a", heads, y, a, attn_shape, shape), shape, a)
    sc2 = g.add("scale2", nir.Scale(scale=np.repeat(c2.numpy(), d)[:, None, None] * np.ones(shape, np.float32)),
                shape, mm2)
    o = _chain(g, [("activation_out", m.activation_out), ("Wproj", m.Wproj), ("norm_proj", m.norm_proj)], sc2, dt)
    _add(g, "add", o, "input")
    g.extensions.add(cv.DUAL_SPIKE_MATMUL)
    return g


def _gwffn(m: GWFFN, shape, dt: float) -> _Graph:
    """GWSFFN: ``up``, grouped convs with the inner residual, ``down`` with the outer one."""
    g = _Graph(shape)
    up = _chain(g, [("up", m.up)], "input", dt)
    z = _chain(g, [(f"conv.{i}", c) for i, c in enumerate(m.conv)], up, dt)
    z = _add(g, "add_inner", z, up)
    z = _chain(g, [("down", m.down)], z, dt)
    _add(g, "add", z, "input")
    return g


def _block(m: nn.Module, shape, dt: float) -> tuple[_Graph, str]:
    if isinstance(m, DSSA):
        return _dssa(m, shape, dt), "DSSA"
    if isinstance(m, GWFFN):
        return _gwffn(m, shape, dt), "GWFFN"
    if isinstance(m, DownsampleLayer):
        g = _Graph(shape)
        _chain(g, [("activation", m.activation), ("conv", m.conv), ("norm", m.norm)], "input", dt)
        return g, "DownsampleLayer"
    raise ValueError(f"no NIR mapping for block {type(m).__name__}")


def _root_metadata(extensions: set[str], dt: float, **extra) -> dict:
    meta = {cv.KEY_FORMAT: cv.FORMAT, cv.KEY_FORMAT_VERSION: cv.FORMAT_VERSION, cv.KEY_DT: float(dt),
            cv.KEY_THRESHOLD_RULE: cv.THRESHOLD_RULE, **extra}
    if extensions:
        meta[cv.KEY_REQUIRED] = ",".join(sorted(extensions))
    return meta


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
    if not isinstance(model, SpikingResformer):
        raise cv.NIRError(f"NIR export of {type(model).__name__} is not supported yet (SpikingResformer, Spikformer "
                          "and simple layer chains only)")
    model.eval()
    check_lowerable_attention(model)
    shape = (model.in_channels, model.img_size, model.img_size)
    top = _Graph(shape)
    stem = _Graph(shape)
    _chain(stem, model.prologue.named_children(), "input", dt)
    src = top.add_graph("prologue", stem, "input", {"sresformer.block": "prologue"})
    for si, stage in enumerate(model.layers):
        for bi, block in enumerate(stage):
            sub, kind = _block(block, top.shapes[src], dt)
            src = top.add_graph(f"layers.{si}.{bi}", sub, src, {"sresformer.block": kind})
    c, h, w = top.shapes[src]
    head = [("avgpool", nn.AvgPool2d((h, w))), ("flatten", nn.Flatten()), ("classifier", model.classifier)]
    _chain(top, head, src, dt)
    meta = _root_metadata(top.extensions, dt, **{cv.KEY_T: int(T or model.T), cv.KEY_INPUT: "static",
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
    g = _Graph(tuple(input_shape))
    children = module.named_children() if isinstance(module, nn.Sequential) else [("0", module)]
    _chain(g, children, "input", dt)
    return g.build(_root_metadata(g.extensions, dt, **(metadata or {})))


def write_graph(graph: nir.NIRGraph, path: str | os.PathLike) -> None:
    """``nir.write`` to a temporary file beside ``path``, renamed onto it only when complete."""
    with atomic_path(path) as tmp:
        # gzip level 1: any HDF5 reader has gzip; the dense form of grouped convs is mostly
        # zeros, which level 1 already squeezes, at a third of the default level's time
        nir.write(str(tmp), graph, compression="gzip", compression_opts=1)


def export(model: nn.Module, path: str | os.PathLike, dt: float = 1.0, input_shape=None, T: int | None = None) -> nir.NIRGraph:
    """Write ``model`` as a NIR file at ``path`` (atomically) and return the graph.

    A SpikingResformer needs nothing else; any other chain of simple modules needs
    ``input_shape`` (per sample, no batch or time). ``dt``: one step in file time units.
    """
    from sresformer.spikformer import Spikformer

    if isinstance(model, (SpikingResformer, Spikformer)):
        graph = model_to_nir(model, dt=dt, T=T)
    elif input_shape is None:
        raise cv.NIRError(f"NIR export of {type(model).__name__} is not supported yet (SpikingResformer, Spikformer "
                          "and simple layer chains only)")
    else:
        graph = export_graph(model, input_shape, dt=dt)
    write_graph(graph, path)
    return graph
