"""A lowered graph moved onto Lava's threshold grid, so :mod:`exporters.lava.plan` maps it exactly.

Lava's fixed-point LIF spikes on ``v > vth << 6``, ours on ``v >= vth``: the two agree for every
integer ``v`` exactly when ``vth = 64 k + 1``. :func:`lava_grid` rounds each neuron's threshold to the
nearest such value (half up), a change of at most 32 membrane units (of a threshold that is 2**6 or
more weight LSBs above it in a lowered graph: the lowering puts ``shift >= 6`` there). Nothing else
changes but biases: Lava adds a neuron's whole bias as ``bias_mant << bias_exp`` (13-bit mantissa, 0..7),
and what a neuron adds is the sum of every bias on its way in (its synapses', and along a residual
stream every earlier synapse's: ``plan.LavaNode.offset``). A static synapse (the stem, computed once per
image on the embedded processor) may hold a bias outside the chip's format (``hw_sim/ARTIFACT.md``,
*Chip formats*), and a sum of in-format biases need not be in it. :func:`lava_grid` rounds each neuron's
total to the format (``exporters.loihi.formats.representable_bias``) by moving the bias of the last
synapse that reaches it unchanged (graph order: later neurons see the change; one whose total the
change would push out again is refused by the plan). The result is an
ordinary graph with our semantics that both the executor and Lava run.
"""

from __future__ import annotations

import copy

import numpy as np

from exporters.loihi.formats import representable_bias
from hw_sim.processes import ProcessGraph

from .plan import ACT_SHIFT, BIAS_EXP_MAX, BIAS_MANT_BITS, plan_graph


def lava_grid(pg: ProcessGraph) -> ProcessGraph:
    """A copy of ``pg`` whose neuron thresholds are ``64 k + 1`` (``k >= 0``), each the nearest to the old one, and
    whose neurons' total biases are Lava's ``mant << exp`` (see the module docstring); refuses (one
    :class:`~exporters.lava.plan.LavaError` line) a graph Lava cannot reproduce for another reason."""
    out = copy.deepcopy(pg)
    step = 1 << ACT_SHIFT
    for p in out:
        if p.kind == "neuron":
            vth = np.asarray(p.params["vth"], np.int64)
            p.params["vth"] = np.maximum((vth - 1 + step // 2) // step, 0) * step + 1
    nodes = plan_graph(out, check_bias=False)
    for p in out:
        if p.kind != "neuron":
            continue
        total = nodes[p.name].params["bias"]                 # every bias on the neuron's way in, ours flat
        delta = representable_bias(total, BIAS_MANT_BITS, BIAS_EXP_MAX) - total
        syn = _latest_synapse(out, p)
        if not delta.any() or syn is None:
            continue   # (a bias left outside the format is refused by the plan, in one line)
        per_channel = delta.reshape(syn.out_shape[0], -1)
        if (per_channel == per_channel[:, :1]).all():      # a per-channel bias can carry the change
            syn.params["bias"] = np.asarray(syn.params["bias"], np.int64) + per_channel[:, 0]
            nodes = plan_graph(out, check_bias=False)      # later neurons see the changed value
    return out


def _latest_synapse(pg: ProcessGraph, neuron):
    """The last synapse (in graph order) whose output reaches ``neuron`` unchanged (through sums, flattens and
    aliases, at the neuron's shape), or None: the one whose bias moves the neuron's total."""
    order = {name: i for i, name in enumerate(pg.processes)}
    found, todo = [], list(neuron.sources)
    while todo:
        q = pg.processes[todo.pop()]
        if q.kind == "synapse" and int(np.prod(q.out_shape)) == int(np.prod(neuron.out_shape)):
            found.append(q)
        elif q.kind in ("sum", "flatten"):
            todo.extend(q.sources)
    return max(found, key=lambda q: order[q.name]) if found else None
