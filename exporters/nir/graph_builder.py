"""Building NIR graphs from torch modules: the one graph builder every torch -> NIR exporter uses.

:class:`GraphBuilder` holds the nodes, edges and output shapes of one (nested) graph under
construction; :func:`add_chain` appends a chain of simple per-step modules (Conv2d with its
BN folded, Linear, LIF/PLIF/IF with an optional spike mask, pools, Flatten, MA gates);
:func:`add_conv` and :func:`add_residual` are its building blocks, :func:`root_metadata`
the root graph's format keys. SpikingResformer (``export.py``) and Spikformer
(``export_spikformer.py``) add their blocks with these; neither imports the other.
"""

from __future__ import annotations

from typing import Iterable

import nir
import numpy as np
from torch import nn

from sresformer.layers import BN
from sresformer.ma_attention import MultiDimAttention
from sresformer.masking import spike_mask_of
from sresformer.neurons import IF, LIF, PLIF

from . import convention as cv
from .extension import attention_gate_graph, max_pool2d_graph, spike_mask_graph
from .fold import dense_from_groups, fold_conv_bn


def pair(v) -> tuple[int, int]:
    """An int or a pair as a pair of ints (torch module attributes come in both forms)."""
    return tuple(int(x) for x in (v if isinstance(v, (tuple, list)) else (v, v)))


class GraphBuilder:
    """Nodes and edges of one (nested) graph under construction, with each node's output shape."""

    def __init__(self, in_shape):
        self.nodes = {"input": nir.Input(np.array(in_shape))}
        self.edges: list[tuple[str, str]] = []
        self.shapes = {"input": tuple(int(s) for s in in_shape)}
        self.extensions: set[str] = set()

    def add(self, name: str, node, shape, *sources: str) -> str:
        """Add node ``name`` of output ``shape`` fed by ``sources``; return its name."""
        if name in self.nodes:
            raise ValueError(f"duplicate NIR node name {name!r}")
        self.nodes[name] = node
        self.shapes[name] = tuple(int(s) for s in shape)
        self.edges += [(src, name) for src in sources]
        return name

    def add_graph(self, name: str, sub: "GraphBuilder", source: str, metadata=None) -> str:
        """Close ``sub`` and add it as nested graph node ``name`` fed by ``source``."""
        self.extensions |= sub.extensions
        return self.add(name, sub.build(metadata), sub.shapes["output"], source)

    def build(self, metadata=None, last: str | None = None) -> nir.NIRGraph:
        """Close the graph with an Output fed by ``last`` (the last added node by default)."""
        if "output" not in self.nodes:
            last = last or list(self.nodes)[-1]
            self.add("output", nir.Output(np.array(self.shapes[last])), self.shapes[last], last)
        return nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=dict(metadata or {}))


def neuron_node(m: nn.Module, shape, dt: float):
    """The NIR node for one of our neurons at a layer of per-sample ``shape``."""
    if isinstance(m, (LIF, PLIF)):
        return nir.LIF(**cv.lif_params(m.tau, m.v_threshold, tuple(shape), dt))
    if isinstance(m, IF):
        # NIR IF: v += r*I per step (no dt factor; as norse reads it), hard reset
        return nir.IF(r=np.ones(shape), v_threshold=np.full(shape, cv.strict_threshold(m.v_threshold), np.float32),
                      v_reset=np.zeros(shape, np.float32))
    raise TypeError(f"not a neuron: {type(m).__name__}")


def add_conv(g: GraphBuilder, name: str, conv: nn.Conv2d, bn, src: str) -> str:
    weight, bias = fold_conv_bn(conv, bn.bn if isinstance(bn, BN) else bn)
    c, h, w = g.shapes[src]
    k, s, p, dil = pair(conv.kernel_size), pair(conv.stride), pair(conv.padding), pair(conv.dilation)
    out = (weight.shape[0],) + tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                                     for n, kk, ss, pp, dd in zip((h, w), k, s, p, dil, strict=False))
    meta = {"sresformer.groups": int(conv.groups)} if conv.groups > 1 else {}
    node = nir.Conv2d(input_shape=(h, w), weight=dense_from_groups(weight, conv.groups), stride=s, padding=p,
                      dilation=dil, groups=1, bias=bias, metadata=meta)
    return g.add(name, node, out, src)


def add_chain(g: GraphBuilder, modules: Iterable[tuple[str, nn.Module]], src: str, dt: float) -> str:
    """Append a chain of simple per-step modules after ``src``; a BN folds into the conv before it."""
    items = list(modules)
    i = 0
    while i < len(items):
        name, m = items[i]
        nxt = items[i + 1][1] if i + 1 < len(items) else None
        if isinstance(m, nn.Sequential):
            src = add_chain(g, [(f"{name}.{n}", c) for n, c in m.named_children()], src, dt)
        elif isinstance(m, nn.Conv2d):
            bn = nxt if isinstance(nxt, (BN, nn.BatchNorm2d)) else None
            src = add_conv(g, name, m, bn, src)
            i += bn is not None
        elif isinstance(m, (LIF, PLIF, IF)):
            src = g.add(name, neuron_node(m, g.shapes[src], dt), g.shapes[src], src)
            gate = spike_mask_of(m)
            if gate is not None and gate.ratio > 0:   # every reader of the neuron reads the gated spikes
                g.extensions.add(cv.SPIKE_MASK)
                src = g.add(f"{name}.mask", spike_mask_graph(g.shapes[src], gate.ratio, gate.seed, gate.gate_id),
                            g.shapes[src], src)
        elif isinstance(m, nn.MaxPool2d):
            sub = max_pool2d_graph(g.shapes[src], m.kernel_size, m.stride or m.kernel_size, m.padding)
            if pair(m.dilation) != (1, 1) or m.ceil_mode:
                raise ValueError(f"{name}: only dilation 1, floor-mode max-pooling is supported")
            g.extensions.add(cv.MAX_POOL2D)
            src = g.add(name, sub, sub.nodes["output"].output_type["output"], src)
        elif isinstance(m, (nn.AvgPool2d, nn.LPPool2d)):
            if isinstance(m, nn.LPPool2d) and float(m.norm_type) != 1.0:
                raise ValueError(f"{name}: only LPPool2d(norm_type=1) (sum pooling) has a NIR node")
            k = pair(m.kernel_size)
            s = pair(m.stride or m.kernel_size)
            p = pair(getattr(m, "padding", 0))
            c, h, w = g.shapes[src]
            out = (c,) + tuple((n + 2 * pp - kk) // ss + 1 for n, kk, ss, pp in zip((h, w), k, s, p, strict=False))
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


def add_residual(g: GraphBuilder, name: str, *sources: str) -> str:
    """A residual sum: an identity Scale(ones) that every source stream enters."""
    shape = g.shapes[sources[0]]
    return g.add(name, nir.Scale(scale=np.ones(shape, dtype=np.float32)), shape, *sources)


def root_metadata(extensions: set[str], dt: float, **extra) -> dict:
    """The root graph's metadata: format, version, ``dt``, threshold rule, the required extensions."""
    meta = {cv.KEY_FORMAT: cv.FORMAT, cv.KEY_FORMAT_VERSION: cv.FORMAT_VERSION, cv.KEY_DT: float(dt),
            cv.KEY_THRESHOLD_RULE: cv.THRESHOLD_RULE, **extra}
    if extensions:
        meta[cv.KEY_REQUIRED] = ",".join(sorted(extensions))
    return meta
