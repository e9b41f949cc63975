"""NIR file -> runnable torch module, for our files and any other made of supported nodes.

The graph runs over whole sequences: each node, in topological order, maps its summed
inputs ``[T, B, *shape]`` to ``[T, B, *shape']`` (neurons loop over T inside). That is
equivalent to stepping the whole graph once per time step because the graph is
feed-forward; recurrent graphs (cycles) are refused with a NIRError.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

from . import convention as cv
from .extension import DualSpikeMatmul, ExtensionOp, build_extension, extension_name
from .nodes import node_module
from .validate import MAX_ELEMENTS, prescan_hdf5, validate_graph

DEFAULT_T = 4  # time steps for a third-party graph that does not declare metadata['T']


def read_graph(path: str | os.PathLike) -> nir.NIRGraph:
    """``nir.read`` (type checks on), then :mod:`.validate`'s checks; every failure a one-line NIRError.

    The file's declared array sizes are checked before anything is loaded, and the graph's
    values (finite weights, node types, metadata types and ranges) before anything runs.
    """
    path = Path(path)
    if not path.is_file():
        raise cv.NIRError(f"NIR file {path} does not exist" if not path.exists() else f"NIR file {path} is not a file")
    try:
        import h5py
        if not h5py.is_hdf5(path):
            raise cv.NIRError(f"{path} is not a NIR file (not HDF5; truncated or another format)")
        with h5py.File(path, "r") as f:
            prescan_hdf5(f, path)
        # nir's type inference divides by crafted strides: its numpy warnings are not our one line
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            graph = nir.read(path)
    except cv.NIRError:
        raise
    except MemoryError:
        raise cv.NIRError(f"{path} declares arrays too large to load") from None
    except OSError as e:
        raise cv.NIRError(f"{path} is corrupt or truncated ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    except (ValueError, KeyError, AssertionError, TypeError, NotImplementedError, AttributeError, IndexError,
            OverflowError, ZeroDivisionError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise cv.NIRError(f"{path} is not a valid NIR graph ({type(e).__name__}: {first})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise cv.NIRError(f"{path} holds a single {type(graph).__name__} node, not a NIRGraph")
    validate_graph(graph, path)
    _check_extensions(graph, path)   # here, so the Loihi lowering refuses them too
    return graph


def _shape(node, key: str):
    types = getattr(node, key, None) or {}
    vals = list(types.values())
    if len(vals) != 1 or vals[0] is None:
        return None
    return tuple(int(s) for s in np.asarray(vals[0]).reshape(-1))


def _toposort(graph_name: str, names: list[str], deps: dict[str, list[str]]) -> list[str]:
    """Kahn's algorithm; keeps the file's order among ready nodes. NIRError on a cycle."""
    pending = {n: set(deps[n]) for n in names}
    order: list[str] = []
    while pending:
        ready = [n for n in names if n in pending and not pending[n]]
        if not ready:
            stuck = dict(pending)
            while True:  # drop nodes nothing stuck waits on: what remains lies on cycles
                sinks = [n for n in stuck if not any(n in d for d in stuck.values())]
                if not sinks:
                    break
                for n in sinks:
                    del stuck[n]
            cycle = ", ".join(sorted(stuck))
            raise cv.NIRError(f"graph {graph_name or '<root>'}: a cycle through {cycle}; recurrent NIR graphs are "
                              "not supported by this reader")
        for n in ready:
            del pending[n]
            order.append(n)
        for n in pending:
            pending[n].difference_update(ready)
    return order


class GraphModule(nn.Module):
    """One (nested) NIR graph as a torch module ``[T, B, *input_shape] -> [T, B, *output_shape]``."""

    def __init__(self, graph: nir.NIRGraph, dt: float, name: str = "", in_shape=None):
        super().__init__()
        where = f"graph {name}" if name else "the root graph"
        inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
        outputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
        if len(inputs) != 1 or len(outputs) != 1:
            raise cv.NIRError(f"{where}: needs exactly one Input and one Output node, has {len(inputs)} and "
                              f"{len(outputs)} (multi-port graphs are not supported)")
        self.input_name, self.output_name = inputs[0], outputs[0]
        declared = _shape(graph.nodes[self.input_name], "input_type")
        self.input_shape = tuple(in_shape) if in_shape is not None else declared
        if self.input_shape is None:
            raise cv.NIRError(f"{where}: its Input node declares no shape")
        if declared is not None and declared != self.input_shape:
            raise cv.NIRError(f"{where}: Input declares shape {declared} but receives {self.input_shape}")

        qual = lambda n: f"{name}.{n}" if name else n  # noqa: E731
        sources = {n: [] for n in graph.nodes}
        for src, dst in graph.edges:
            if src not in graph.nodes or dst not in graph.nodes:
                raise cv.NIRError(f"{where}: edge ({src!r}, {dst!r}) names a missing node")
            sources[dst].append(src)
        ext = {n: build_extension(qual(n), g) for n, g in graph.nodes.items()
               if isinstance(g, nir.NIRGraph) and extension_name(g) is not None}
        deps = {n: list(sources[n]) for n in graph.nodes}
        # edges into a product may come from any product operand of the graph (Spikformer's
        # first SSA product also carries the edge of the second's spike operand)
        products = {o for op in ext.values() if isinstance(op, DualSpikeMatmul) for o in op.operands}
        for n, op in ext.items():
            for operand in op.operands:
                if operand not in graph.nodes:
                    raise cv.NIRError(f"node {qual(n)!r}: operand {operand!r} is not a node of {where}")
                deps[n].append(operand)
            if isinstance(op, DualSpikeMatmul) and sources[n] and not set(sources[n]) <= products:
                raise cv.NIRError(f"node {qual(n)!r}: its edge input must be an operand of a product, one of "
                                  f"{sorted(products)}")
        order = _toposort(name, list(graph.nodes), deps)

        # build in order, running zeros through to learn (and check) every node's shape
        self.names, self.sources = [], []
        self.steps = nn.ModuleList()
        values = {self.input_name: torch.zeros(1, 1, *self.input_shape)}
        for n in order:
            if n == self.input_name:
                continue
            node = graph.nodes[n]
            if isinstance(node, nir.Input) or not sources[n]:
                raise cv.NIRError(f"node {qual(n)!r} ({type(node).__name__}) has no input edge")
            x = self._sum(qual(n), [values[s] for s in sources[n]], sources[n])
            shape = tuple(x.shape[2:])
            if n in ext:
                mod = ext[n]
            elif isinstance(node, nir.NIRGraph):
                mod = GraphModule(node, dt, qual(n), shape)
            else:
                mod = node_module(node, qual(n), shape, dt)
            _check_size(qual(n), node, shape, values, mod)
            try:
                with torch.no_grad():
                    values[n] = mod.run(x, values) if isinstance(mod, ExtensionOp) else mod(x)
            except cv.NIRError:
                raise
            except (RuntimeError, ValueError, IndexError) as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise cv.NIRError(f"node {qual(n)!r} ({type(node).__name__}): input of shape {shape} does not fit "
                                  f"({msg})") from None
            out_decl = _shape(node, "output_type")
            got = tuple(values[n].shape[2:])
            # a declared shape () means scalar parameters that broadcast (snntorch writes those)
            if out_decl and not isinstance(node, nir.NIRGraph) and out_decl != got and n != self.output_name:
                raise cv.NIRError(f"node {qual(n)!r} ({type(node).__name__}): declares output shape {out_decl} "
                                  f"but computes {got}")
            self.names.append(n)
            self.sources.append(sources[n])
            self.steps.append(mod)
        self.output_shape = tuple(values[self.output_name].shape[2:])
        out_decl = _shape(graph.nodes[self.output_name], "output_type")
        if out_decl is not None and out_decl != self.output_shape:
            raise cv.NIRError(f"{where}: Output declares shape {out_decl} but the graph computes {self.output_shape}")
        # free each value after its last use: keeps the peak memory of a deep graph low
        last_use = {}
        for i, srcs in enumerate(self.sources):
            for s in srcs + list(getattr(self.steps[i], "operands", ())):
                last_use[s] = i
        self.release = [[s for s, j in last_use.items() if j == i and s != self.output_name]
                        for i in range(len(self.names))]

    @staticmethod
    def _sum(name, xs, srcs):
        """NIR's rule: a node's input is the sum of every edge entering it (in edge order)."""
        x = xs[0]
        for other, src in zip(xs[1:], srcs[1:], strict=False):
            if other.shape[2:] != x.shape[2:]:
                raise cv.NIRError(f"node {name!r}: inputs of shapes {tuple(x.shape[2:])} and "
                                  f"{tuple(other.shape[2:])} (from {src!r}) cannot be summed")
            x = x + other
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.input_shape:
            raise cv.NIRError(f"input of shape {tuple(x.shape)} does not match the graph's [T, B, "
                              f"{', '.join(map(str, self.input_shape))}]")
        values = {self.input_name: x}
        for n, srcs, mod, free in zip(self.names, self.sources, self.steps, self.release, strict=False):
            inp = self._sum(n, [values[s] for s in srcs], srcs)
            values[n] = mod.run(inp, values) if isinstance(mod, ExtensionOp) else mod(inp)
            for s in free:
                values.pop(s, None)
        return values[self.output_name]


def _window_out(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _check_size(name: str, node, shape, values, mod) -> None:
    """Refuse, before it runs, a node whose output would exceed MAX_ELEMENTS per sample.

    The declared types are bounded by the validator, but a third-party file may declare
    none: a conv with large padding or a product of two large operands would allocate first.
    """
    elems = None
    if isinstance(node, nir.Conv2d) and len(shape) == 3 and hasattr(mod, "weight"):
        pad = node.padding if not isinstance(node.padding, str) else 0
        k = mod.weight.shape[-2:]
        sp = [_window_out(shape[i + 1], int(k[i]), int(np.broadcast_to(node.stride, (2,))[i]),
                          int(np.broadcast_to(pad, (2,))[i]), int(np.broadcast_to(node.dilation, (2,))[i]))
              for i in range(2)]
        elems = int(mod.weight.shape[0]) * math.prod(max(v, 0) for v in sp)
    elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)) and len(shape) == 3:
        k, s, p = (np.broadcast_to(np.asarray(v), (2,)) for v in (node.kernel_size, node.stride, node.padding))
        elems = shape[0] * math.prod(max(_window_out(shape[i + 1], int(k[i]), int(s[i]), int(p[i])), 0)
                                     for i in range(2))
    elif isinstance(mod, DualSpikeMatmul) and all(o in values for o in mod.operands):
        a, b = (values[o] for o in mod.operands)
        # every product form's output is at most (one operand's size) x (the other's spatial size)
        elems = math.prod(a.shape[2:]) * math.prod(b.shape[3:])
    if elems is not None and elems > MAX_ELEMENTS:
        raise cv.NIRError(f"node {name!r} ({type(node).__name__}): its output would have {elems:.3g} elements per "
                          f"sample (at most {MAX_ELEMENTS}); check its padding, kernel and input shapes")


def _check_extensions(graph: nir.NIRGraph, path) -> None:
    unknown = [e for e in cv.required_extensions(graph.metadata) if e not in cv.KNOWN_EXTENSIONS]
    if unknown:
        raise cv.NIRError(f"{path} requires NIR extensions this reader does not know: {', '.join(unknown)}")


def load(path: str | os.PathLike, dt: float | None = None) -> GraphModule:
    """A torch module running the NIR graph in ``path``: ``[T, B, *input_shape] -> [T, B, *output_shape]``.

    ``dt`` is the integration step in the file's time unit; None takes the file's
    ``metadata['dt']`` (ours: 1.0, one model step), else 1.0. Use ``dt=1e-4`` for graphs
    from snntorch, whose time constants assume that step. The module is in eval mode and
    carries ``metadata``, ``dt``, ``input_shape`` and ``output_shape``.
    """
    graph = read_graph(path)
    _check_extensions(graph, path)
    meta = dict(graph.metadata or {})
    if dt is None:
        dt = float(meta.get(cv.KEY_DT, 1.0))
    if not dt > 0:
        raise cv.NIRError(f"dt must be positive, got {dt}")
    module = GraphModule(graph, float(dt))
    module.metadata, module.dt = meta, float(dt)
    return module.eval()


class EvalModel(nn.Module):
    """Images ``[B, C, H, W]`` (repeated over T) or frames ``[T, B, C, H, W]`` -> logits ``[B, K]``."""

    def __init__(self, graph: GraphModule, T: int, img_size: int, in_channels: int, num_classes: int):
        super().__init__()
        self.graph, self.T = graph, T
        self.img_size, self.in_channels, self.num_classes = img_size, in_channels, num_classes

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step outputs ``[T, B, K]``."""
        if x.dim() == 4:
            x = x.unsqueeze(0).expand(self.T, *x.shape)
        elif x.dim() != 5:
            raise cv.NIRError(f"expected input [B, C, H, W] or [T, B, C, H, W], got {tuple(x.shape)}")
        return self.graph(x)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits: the mean over T of the per-step outputs (SpikingResformer's readout)."""
        return self.forward_steps(x).mean(0)


def load_for_eval(path: str | os.PathLike) -> EvalModel:
    """A classifier from a NIR file: input ``[C, H, W]`` with H == W, output ``[K]``.

    T, image size, channels and classes come from our metadata when present, otherwise
    from the graph's shapes (T = metadata['T'] or 4).
    """
    graph = load(path)
    if len(graph.input_shape) != 3 or graph.input_shape[1] != graph.input_shape[2] or len(graph.output_shape) != 1:
        raise cv.NIRError(f"{path}: a classifier needs input [C, H, H] and output [K]; this graph maps "
                          f"{list(graph.input_shape)} to {list(graph.output_shape)}")
    T = int(graph.metadata.get(cv.KEY_T, DEFAULT_T))
    c, h, _ = graph.input_shape
    return EvalModel(graph, T, h, c, graph.output_shape[0]).eval()
