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
total to the format (``exporters.loihi.formats.representable_bias``) by moving the bias of one synapse
that reaches it unchanged (the latest first), by at most ``MAX_MOVE``, to the nearest value that keeps that
synapse's own bias in the chip's format and every neuron fixed before in Lava's (a neuron no move fits is
refused by the plan, in one line). The result is an
ordinary graph with our semantics that both the executor and Lava run.
"""

from __future__ import annotations

import copy

import numpy as np

from exporters.loihi.formats import representable_bias
from hw_sim.processes import ProcessGraph

from .plan import ACT_SHIFT, BIAS_EXP_MAX, BIAS_MANT_BITS, plan_graph

MAX_MOVE = 512   # the most a bias moves (membrane units): 4 steps of the coarsest bias grid (1 << 7)


def lava_grid(pg: ProcessGraph) -> ProcessGraph:
    """A copy of ``pg`` whose neuron thresholds are ``64 k + 1`` (``k >= 0``), each the nearest to the old one (but a
    neuron reading counts straight, which Lava runs unscaled and keeps its threshold: ``plan._count_neuron``), and
    whose neurons' total biases are Lava's ``mant << exp`` (see the module docstring); refuses (one
    :class:`~exporters.lava.plan.LavaError` line) a graph Lava cannot reproduce for another reason."""
    out = copy.deepcopy(pg)
    step = 1 << ACT_SHIFT
    old = {p.name: p.params["vth"] for p in out if p.kind == "neuron"}
    for p in out:
        if p.kind == "neuron":
            vth = np.asarray(p.params["vth"], np.int64)
            p.params["vth"] = np.maximum((vth - 1 + step // 2) // step, 0) * step + 1
    _align_product_biases(out)
    nodes = plan_graph(out, check_bias=False)
    for name, n in nodes.items():   # a neuron reading counts compares v > vth - 1 itself (plan._count_neuron)
        if n.lava == "lif" and n.params.get("count"):
            out.processes[name].params["vth"] = old[name]
    done: list[str] = []
    for p in out:
        if p.kind != "neuron":
            continue
        total = nodes[p.name].params["bias"]                 # every bias on the neuron's way in, ours flat
        if nodes[p.name].params["host"]:                     # the host writes it per image (plan._neuron)
            continue
        if not _in_format(total).all():
            nodes = _move_a_bias(out, p, total, done) or nodes
        done.append(p.name)
    return out


def _align_product_biases(pg: ProcessGraph) -> None:
    """Round the bias of every synapse that is a product's dynamic operand to the nearest multiple of 64 (half
    up; at most 32 units, an eighth of a weight LSB at the lowering's ``shift >= 8``), so that the bias times
    the spikes reaches Lava's neuron, which takes input in steps of 64, exactly (``products.py``)."""
    step = 1 << ACT_SHIFT
    for p in pg:
        if p.kind in ("prodmm", "dsmm"):
            dyn = pg.processes[p.operands[0]]
            if dyn.kind == "synapse":
                b = np.asarray(dyn.params["bias"], np.int64)
                dyn.params["bias"] = (b + step // 2) // step * step


def _in_format(x: np.ndarray) -> np.ndarray:
    return representable_bias(x, BIAS_MANT_BITS, BIAS_EXP_MAX) == x


def _fit_both(bias: np.ndarray, others: np.ndarray) -> np.ndarray | None:
    """Per channel the bias ``b + d`` nearest ``b`` (``|d| <= MAX_MOVE``) such that both it (the chip's compartment
    format, ``hw_sim`` checks it) and the neuron's total ``b + d + others`` (Lava's) are ``mant << exp``; None
    when a channel has no such value."""
    d = np.arange(-MAX_MOVE, MAX_MOVE + 1)
    d = d[np.argsort(np.abs(d), kind="stable")]                     # the smallest move first
    cand = bias[:, None] + d[None, :]                                 # [C, moves]
    ok = _in_format(cand) & _in_format(cand + others[:, None])
    if not ok.any(1).all():
        return None
    return cand[np.arange(len(bias)), ok.argmax(1)]


def _move_a_bias(pg: ProcessGraph, neuron, total: np.ndarray, done: list[str]) -> dict | None:
    """Move the bias of one synapse reaching ``neuron`` unchanged (the latest first) so that its total is in
    Lava's format, keeping the totals of the neurons in ``done`` in it; the new plan, or None (nothing moved)."""
    for syn in _synapses_reaching(pg, neuron):
        per_channel = total.reshape(syn.out_shape[0], -1)
        if not (per_channel == per_channel[:, :1]).all():   # a per-channel bias cannot carry the change
            continue
        old = np.asarray(syn.params["bias"], np.int64)
        moved = _fit_both(old, per_channel[:, 0] - old)
        if moved is None:
            continue
        syn.params["bias"] = moved
        nodes = plan_graph(pg, check_bias=False)
        if all(_in_format(nodes[n].params["bias"]).all() for n in done):
            return nodes
        syn.params["bias"] = old   # it would push an earlier neuron out of the format: try the next one
    return None


def _synapses_reaching(pg: ProcessGraph, neuron) -> list:
    """The synapses whose output reaches ``neuron`` unchanged (through sums and flattens, at the neuron's
    size), the latest (graph order) first."""
    order = {name: i for i, name in enumerate(pg.processes)}
    found, todo = {}, list(neuron.sources)
    while todo:
        q = pg.processes[todo.pop()]
        if q.kind == "synapse" and int(np.prod(q.out_shape)) == int(np.prod(neuron.out_shape)):
            found[q.name] = q
        elif q.kind in ("sum", "flatten"):
            todo.extend(q.sources)
    return sorted(found.values(), key=lambda q: -order[q.name])
