"""A lowered graph moved onto Lava's threshold grid, so :mod:`exporters.lava.plan` maps it exactly.

Lava's fixed-point LIF spikes on ``v > vth << 6``, ours on ``v >= vth``: the two agree for every
integer ``v`` exactly when ``vth = 64 k + 1``. :func:`lava_grid` rounds each neuron's threshold to the
nearest such value (half up), a change of at most 32 membrane units (of a threshold that is 2**6 or
more weight LSBs above it in a lowered graph: the lowering puts ``shift >= 6`` there). Nothing else
changes but the biases of static synapses: a static synapse (the stem, computed once per image on the
embedded processor) may hold a bias outside the chip's format (``hw_sim/ARTIFACT.md``, *Chip formats*),
and Lava adds every bias as ``bias_mant << bias_exp``; :func:`lava_grid` rounds each neuron's summed bias
to that format (``exporters.loihi.formats.representable_bias``, a no-op for an on-chip synapse's bias,
which the lowering already fitted). The result is an ordinary graph with our semantics that both the
executor and Lava run.
"""

from __future__ import annotations

import copy

import numpy as np

from exporters.loihi.formats import representable_bias
from hw_sim.processes import ProcessGraph

from .plan import ACT_SHIFT, BIAS_EXP_MAX, BIAS_MANT_BITS


def lava_grid(pg: ProcessGraph) -> ProcessGraph:
    """A copy of ``pg`` whose neuron thresholds are ``64 k + 1`` (``k >= 0``), each the nearest to the old one."""
    out = copy.deepcopy(pg)
    step = 1 << ACT_SHIFT
    for p in out:
        if p.kind == "neuron":
            vth = np.asarray(p.params["vth"], np.int64)
            k = np.maximum((vth - 1 + step // 2) // step, 0)
            p.params["vth"] = k * step + 1
            syns = [_synapse_behind(out, s) for s in p.sources]
            syns = [q for q in syns if q is not None]
            if syns and len({q.params["bias"].shape for q in syns}) == 1:
                total = sum(np.asarray(q.params["bias"], np.int64) for q in syns)
                for i, q in enumerate(syns):
                    q.params["bias"] = representable_bias(total, BIAS_MANT_BITS, BIAS_EXP_MAX) if i == 0 \
                        else np.zeros_like(total)
    return out


def _synapse_behind(pg: ProcessGraph, name: str):
    """The synapse whose value ``name`` passes on (through flattens and aliases), or None."""
    p = pg.processes[name]
    while p.kind == "flatten" or (p.kind == "sum" and p.attrs.alias):
        p = pg.processes[p.sources[0]]
    return p if p.kind == "synapse" else None
