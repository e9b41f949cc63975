"""A NIR graph flattened to one topologically ordered list of nodes, ready for lowering.

Nested graphs are inlined (their Input and Output become aliases of the outer edges),
extension subgraphs become single nodes, and every node lists the values whose sum is its
input (NIR's rule for several edges entering a node). Each node also carries its float
torch module (the NIR reader's own node semantics), so the flat graph runs in float for
calibration and for checking the lowering.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np
import torch
from torch import nn

from exporters.nir.convention import NIRError
from exporters.nir.extension import DualSpikeMatmul, ExtensionOp, build_extension, extension_name
from exporters.nir.nodes import node_module
from hw_sim.liveness import last_reads


@dataclass
class FlatNode:
    """One operation of the flat graph; ``sources`` are summed to form its input."""

    name: str
    node: object                       # the nir node (an NIRGraph for extensions)
    kind: str
    sources: list[str]
    operands: tuple[str, ...] = ()     # extension operands (DSSA: dynamic, spikes)
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    module: nn.Module | None = field(default=None, repr=False)


KINDS = {nir.Conv2d: "conv", nir.Affine: "dense", nir.Linear: "dense", nir.LIF: "lif", nir.IF: "if",
         nir.CubaLIF: "cubalif", nir.LI: "li", nir.Threshold: "threshold", nir.Scale: "scale",
         nir.SumPool2d: "sumpool", nir.AvgPool2d: "avgpool", nir.Flatten: "flatten"}
NEURON_KINDS = ("lif", "if", "cubalif", "li", "threshold", "softif", "rateif")


def _kind(node, name: str) -> str:
    if isinstance(node, nir.NIRGraph):
        ext = extension_name(node)
        kind = {"sresformer.dual_spike_matmul": "dsmm", "sresformer.max_pool2d": "maxpool",
                "sresformer.attention_gate": "attngate",
                "sresformer.spike_mask": "gate", "sresformer.soft_reset_if": "softif",
                "sresformer.spike_counter": "counter"}.get(ext, "graph")
        if kind == "softif" and int(np.asarray(node.metadata.get("rate_normalised", 0))):
            kind = "rateif"   # the rate-normalised IF of a cumulative product (hw_sim/ratenorm.py)
        return kind
    for cls, kind in KINDS.items():
        if type(node) is cls:
            return kind
    raise NIRError(f"node {name!r}: NIR node type {type(node).__name__} is not supported by the Loihi lowering")


def _toposort(graph: nir.NIRGraph, where: str) -> list[str]:
    deps = {n: [] for n in graph.nodes}
    for src, dst in graph.edges:
        if src not in graph.nodes or dst not in graph.nodes:
            raise NIRError(f"{where}: edge ({src!r}, {dst!r}) names a missing node")
        deps[dst].append(src)
    for n, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph) and extension_name(node):
            meta = node.metadata or {}
            deps[n] += [str(meta[k]) for k in ("dynamic", "spikes") if k in meta]
    order, state = [], {}

    def visit(n, stack):
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise NIRError(f"{where}: cycle through node {n!r} (recurrent graphs are not supported)")
        state[n] = 1
        for d in deps[n]:
            if d not in graph.nodes:
                raise NIRError(f"{where}: node {n!r} refers to missing node {d!r}")
            visit(d, stack)
        state[n] = 2
        order.append(n)

    for n in graph.nodes:
        visit(n, [])
    return order


class FlatGraph:
    """Nodes in execution order; ``input`` is the graph input's name, ``output`` the list summed as output."""

    def __init__(self, graph: nir.NIRGraph, dt: float = 1.0):
        self.dt = float(dt)
        self.nodes: dict[str, FlatNode] = {}
        self.metadata = dict(graph.metadata or {})
        inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
        if len(inputs) != 1:
            raise NIRError(f"the root graph needs exactly one Input node, has {len(inputs)}")
        shape = tuple(int(s) for s in np.asarray(graph.nodes[inputs[0]].input_type["input"]).reshape(-1))
        self.input = "input"
        self.nodes["input"] = FlatNode("input", graph.nodes[inputs[0]], "input", [], in_shape=shape, out_shape=shape)
        self.output = self._inline(graph, "", ["input"])
        self._build_modules()

    def _inline(self, graph: nir.NIRGraph, prefix: str, input_sources: list[str]) -> list[str]:
        where = f"graph {prefix[:-1]}" if prefix else "the root graph"
        alias: dict[str, list[str]] = {}
        out_sources: list[str] | None = None
        incoming = {n: [s for s, d in graph.edges if d == n] for n in graph.nodes}
        resolve = lambda names: [v for n in names for v in alias[n]]  # noqa: E731
        for n in _toposort(graph, where):
            node, qual = graph.nodes[n], prefix + n
            if isinstance(node, nir.Input):
                alias[n] = list(input_sources)
            elif isinstance(node, nir.Output):
                out_sources = resolve(incoming[n])
                alias[n] = out_sources
            elif isinstance(node, nir.NIRGraph) and extension_name(node) is None:
                alias[n] = self._inline(node, qual + ".", resolve(incoming[n]))
            else:
                kind = _kind(node, qual)
                operands = ()
                if kind == "dsmm":
                    meta = node.metadata
                    operands = tuple(self._single(resolve([str(meta[k])]), f"{qual}.{k}")
                                     for k in ("dynamic", "spikes"))
                sources = resolve(incoming[n])
                if not sources:
                    raise NIRError(f"node {qual!r} ({type(node).__name__}) has no input edge")
                self.nodes[qual] = FlatNode(qual, node, kind, sources, operands)
                alias[n] = [qual]
        if out_sources is None:
            raise NIRError(f"{where} has no Output node")
        return out_sources

    def _single(self, names: list[str], name: str) -> str:
        """One value for an extension operand: a synthetic identity-sum node when several edges meet."""
        if len(names) == 1:
            return names[0]
        shape_node = nir.Scale(scale=np.ones(1, np.float32))
        self.nodes[name] = FlatNode(name, shape_node, "scale", list(names))
        return name

    @torch.no_grad()
    def _build_modules(self) -> None:
        values = {"input": torch.zeros(1, 1, *self.nodes["input"].out_shape)}
        for fn in list(self.nodes.values())[1:]:
            x = self.sum_inputs(fn, values)
            fn.in_shape = tuple(x.shape[2:])
            if fn.kind == "dsmm":
                meta = fn.node.metadata
                fn.module = DualSpikeMatmul(str(meta["form"]), int(meta["heads"]), *fn.operands)
            elif fn.kind in ("maxpool", "attngate", "gate", "softif", "rateif", "counter"):
                fn.module = build_extension(fn.name, fn.node)
            elif fn.kind == "scale" and fn.name.endswith((".dynamic", ".spikes")):
                fn.module = nn.Identity()
            else:
                fn.module = node_module(fn.node, fn.name, fn.in_shape, self.dt)
            try:
                values[fn.name] = self.run_node(fn, x, values)
            except (RuntimeError, ValueError, IndexError) as e:
                raise NIRError(f"node {fn.name!r} ({fn.kind}): input of shape {fn.in_shape} does not fit "
                               f"({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None
            fn.out_shape = tuple(values[fn.name].shape[2:])

    @staticmethod
    def sum_inputs(fn: FlatNode, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """The input of ``fn``: the sum of its sources' values, in edge order."""
        x = values[fn.sources[0]]
        for s in fn.sources[1:]:
            if values[s].shape[2:] != x.shape[2:]:
                raise NIRError(f"node {fn.name!r}: inputs of shapes {tuple(x.shape[2:])} and "
                               f"{tuple(values[s].shape[2:])} (from {s!r}) cannot be summed")
            x = x + values[s]
        return x

    @staticmethod
    def run_node(fn: FlatNode, x: torch.Tensor, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Float output of one node on ``[T, B, ...]``."""
        return fn.module.run(x, values) if isinstance(fn.module, ExtensionOp) else fn.module(x)

    def consumers(self) -> dict[str, list[str]]:
        """For every value, the nodes that read it (by edge or as an extension operand)."""
        out = {n: [] for n in self.nodes}
        for fn in self.nodes.values():
            for s in list(fn.sources) + list(fn.operands):
                out[s].append(fn.name)
        return out

    @torch.no_grad()
    def run(self, x: torch.Tensor, observe=None) -> torch.Tensor:
        """Float forward ``[T, B, *input] -> [T, B, *output]``; ``observe(node, input, output)`` sees every node."""
        values = {"input": x}
        order = list(self.nodes.values())[1:]
        # a value is dropped after its last reader: memory is the live set, not the whole network's
        drop = last_reads(((fn.name, list(fn.sources) + list(fn.operands)) for fn in order), self.output)
        for i, fn in enumerate(order):
            inp = self.sum_inputs(fn, values)
            values[fn.name] = self.run_node(fn, inp, values)
            if observe is not None:
                observe(fn, inp, values[fn.name])
            del inp
            for name in drop.get(i, ()):
                del values[name]
        out = values[self.output[0]]
        for s in self.output[1:]:
            out = out + values[s]
        return out
