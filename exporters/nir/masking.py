"""Random spike masking on a NIR graph: insert ``sresformer.spike_mask`` gates after chosen neurons.

The NIR counterpart of :func:`sresformer.masking.apply_spike_mask`, for ``MODEL.nir``
sources. Neurons are chosen by qualified node name (``layers.0.0.activation_in``: nested
graph names joined with dots, our export's names follow the torch module names) with the
same selectors: ``attn`` = ``activation_in`` inside a graph marked
``sresformer.block = DSSA``; ``mlp`` = ``up.0`` inside a ``GWFFN`` graph; anything else
an ``fnmatch`` glob over neuron node names. Gates are numbered in graph order, which for
our files is the torch module order, so masking a checkpoint and masking its NIR file
give the same gates.
"""

from __future__ import annotations

import fnmatch

import nir
import numpy as np

from sresformer.masking import MaskSpec, SpikeMaskError

from . import convention as cv
from .extension import extension_name, spike_mask_graph

NEURON_NODES = (nir.LIF, nir.IF, nir.CubaLIF)
PRESET_NODES = {"attn": {"DSSA": ("activation_in",)}, "mlp": {"GWFFN": ("up.0",)}}


def _selected(block: str | None, local: str, qual: str, selectors) -> bool:
    for sel in selectors:
        if sel in PRESET_NODES:
            if local in PRESET_NODES[sel].get(block or "", ()):
                return True
        elif fnmatch.fnmatchcase(qual, sel):
            return True
    return False


def _has_masks(graph: nir.NIRGraph) -> bool:
    for node in graph.nodes.values():
        if isinstance(node, nir.NIRGraph):
            if extension_name(node) == cv.SPIKE_MASK or (extension_name(node) is None and _has_masks(node)):
                return True
    return False


def _mask(graph: nir.NIRGraph, prefix: str, spec: MaskSpec, counter: list[int]) -> nir.NIRGraph:
    block = cv.meta_str((graph.metadata or {}).get("sresformer.block", "")) or None
    nodes, edges = dict(graph.nodes), list(graph.edges)
    for name, node in graph.nodes.items():
        qual = prefix + name
        if isinstance(node, nir.NIRGraph) and extension_name(node) is None:
            nodes[name] = _mask(node, qual + ".", spec, counter)
        elif isinstance(node, NEURON_NODES) and _selected(block, name, qual, spec.modules):
            shape = np.shape(node.v_threshold)
            gate = f"{name}.mask"
            if gate in nodes:
                raise SpikeMaskError(f"NIR node {qual!r} already has a node {gate!r}")
            nodes[gate] = spike_mask_graph(shape, spec.ratio, spec.seed, counter[0])
            counter[0] += 1
            edges = [(gate if s == name else s, d) for s, d in edges] + [(name, gate)]
            for key, other in list(nodes.items()):   # dual-spike matmul operands name the neuron: read the gate
                meta = dict(getattr(other, "metadata", None) or {})
                hits = [k for k in ("dynamic", "spikes") if k in meta and cv.meta_str(meta[k]) == name]
                if isinstance(other, nir.NIRGraph) and extension_name(other) and hits:
                    meta.update({k: gate for k in hits})
                    nodes[key] = nir.NIRGraph(nodes=other.nodes, edges=other.edges, metadata=meta)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata or {}))


def mask_graph(graph: nir.NIRGraph, spec: MaskSpec) -> nir.NIRGraph:
    """A copy of ``graph`` with a spike gate after every neuron ``spec`` selects; SpikeMaskError if none is."""
    if _has_masks(graph):
        raise SpikeMaskError("this NIR graph already carries spike masks (sresformer.spike_mask); --spike-mask "
                             "applies to an unmasked graph or to a checkpoint")
    if spec.ratio == 0:
        return graph
    counter = [0]
    out = _mask(graph, "", spec, counter)
    if counter[0] == 0:
        raise SpikeMaskError(f"--spike-mask {spec}: selects no neuron of this NIR graph (presets attn, mlp need "
                             "our SpikingResformer files; globs match qualified node names such as "
                             "layers.0.0.activation_in)")
    required = set(cv.required_extensions(out.metadata)) | {cv.SPIKE_MASK}
    out.metadata[cv.KEY_REQUIRED] = ",".join(sorted(required))
    return out


__all__ = ["mask_graph"]
