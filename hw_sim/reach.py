"""Which inputs reach which outputs: the chip's connectivity pushed backwards, per process kind.

``back(p, pg, m)`` takes a flat mask ``m`` over ``p``'s outputs and returns, for each source
of ``p``, the number of stored synapses (non-zero weights), pooling-window taps or operand
entries by which each source element feeds the selected outputs (borders, strides, groups
exact). The message tables (:mod:`hw_sim.connectivity`), the fan-out count
(:mod:`hw_sim.fanout`) and the per-core input axons (:mod:`hw_sim.resources`) all use it;
it imports neither the mapping nor the counters, so each of them can.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.grad import conv2d_input

from .op_kernels import product_dims
from .processes import Process, ProcessGraph

# -- connectivity pushed backwards: stored synapses from each input into a set of outputs ---------

def _back_conv(p: Process, m: torch.Tensor, in_shape) -> torch.Tensor:
    w = torch.from_numpy(np.asarray(p.params["weight"]) != 0).float()
    a = p.attrs
    cout, cin_g = w.shape[0], w.shape[1]
    cout_g = cout // a.groups
    m = m.view(cout, *p.out_shape[1:])
    out = torch.zeros(in_shape)
    chans = torch.nonzero(m.flatten(1).any(1)).flatten()
    if chans.numel() == 0:
        return out.flatten()
    lo, hi = int(chans[0]), int(chans[-1]) + 1
    for g in range(lo // cout_g, (hi - 1) // cout_g + 1):   # one conv per group spanned, on its channels only
        a0, a1 = max(lo, g * cout_g), min(hi, (g + 1) * cout_g)
        out[g * cin_g:(g + 1) * cin_g] += conv2d_input((1, cin_g, *in_shape[1:]), w[a0:a1], m[a0:a1].unsqueeze(0),
                                                       a.stride, a.padding, a.dilation, 1)[0]
    return out.flatten()


def _back_pool(p: Process, m: torch.Tensor, in_shape) -> torch.Tensor:
    a = p.attrs
    ones = torch.ones(in_shape[0], 1, *a.kernel)
    return conv2d_input((1, *in_shape), ones, m.view(1, *p.out_shape), a.stride, a.padding, 1,
                        in_shape[0])[0].flatten()


def _back_dsmm(p: Process, pg: ProcessGraph, m: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """``out[h] = L[h] @ R[h]``: ``L[r, k]`` feeds out row ``r``, ``R[k, c]`` feeds out column ``c``; the
    dynamic operand's rows outside those the form uses (DSSA's other half) feed nothing."""
    dims, heads = product_dims(p, pg), p.attrs.heads
    f = dims.form
    (r, k), (_, c) = dims.left, dims.right
    mo = m.view(heads, r, c)
    left = mo.sum(2, keepdim=True).expand(heads, r, k)     # selected outputs per row, for every L[r, k]
    right = mo.sum(1, keepdim=True).expand(heads, k, c)    # per column, for every R[k, c]
    side = {f.left: left.transpose(1, 2) if f.transpose_left else left,
            f.right: right.transpose(1, 2) if f.transpose_right else right}
    dyn = torch.zeros(heads, *dims.dyn_view)
    dyn[:, dims.dyn_rows[0]:dims.dyn_rows[1]] = side["dyn"]
    return [(p.operands[0], dyn.flatten()), (p.operands[1], side["spk"].flatten())]


def _back_none(p: Process, pg: ProcessGraph, m: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    return []


def _sources(count):
    """A kind whose summed input port feeds its outputs as ``count(p, m, in_shape)`` says."""
    def back(p: Process, pg: ProcessGraph, m: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        c = count(p, m, pg.processes[p.sources[0]].out_shape)
        return [(s, c) for s in p.sources]
    return back


def _back_synapse(p: Process, m: torch.Tensor, in_shape) -> torch.Tensor:
    if p.attrs.op == "conv":
        return _back_conv(p, m, in_shape)
    return m @ torch.from_numpy(np.asarray(p.params["weight"]) != 0).float()


def _elementwise(p: Process, m: torch.Tensor, in_shape) -> torch.Tensor:
    return m


#: process kind -> its connectivity pushed backwards: ``(p, pg, m)`` -> ``[(source, counts over the
#: source's flat output)]`` reaching the outputs selected by flat mask ``m``
#: (tests/hw_sim/test_kernel_tables.py checks that it covers every kind)
BACK = {"input": _back_none, "synapse": _sources(_back_synapse), "neuron": _sources(_elementwise),
        "sum": _sources(_elementwise), "dsmm": _back_dsmm, "prodmm": _back_dsmm, "sumpool": _sources(_back_pool),
        "maxpool": _sources(_back_pool), "flatten": _sources(_elementwise), "attngate": _sources(_elementwise),
        "gate": _sources(_elementwise)}


def back(p: Process, pg: ProcessGraph, m: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """``(source, counts over the source's flat output)`` reaching the outputs selected by flat mask ``m``."""
    return BACK[p.kind](p, pg, m)
