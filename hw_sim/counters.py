"""Exact event counts per core and per time step, from the executor's tensors.

What is counted (per sample, per step ``t``, per neuro core; host work in an ``embedded``
bucket, once per inference because static processes run once):

- ``ac``: synaptic accumulates driven by binary spikes, each spike's real fan-out into each
  core (borders, strides and groups exact; only non-zero stored weights count), plus DSSA's
  gated accumulations (``dsmm``: a spike adds one column of the dynamic operand, so it costs
  the column length, split by the cores holding the column's outputs); ``dsmm`` repeats the
  latter on its own;
- ``mac``: synaptic multiply-accumulates driven by non-zero graded values (the readout
  classifier; the stem on the embedded processor), same fan-out rule;
- ``active`` / ``idle``: compartment updates of every group's compartments (neurons: active
  when input, remaining current or voltage is non-zero; graded integrators - residual sums,
  pools, multi-reader synapses, the readout: active when their input is non-zero);
- MA attention gates (``attngate``) run on the embedded processor at every step: their MLP,
  conv and gate multiplies are ``mac``, their pooling adds / max comparisons ``ac``, in the
  ``embedded`` bucket (a fixed count per evaluation: the arithmetic is dense); the values
  they read are messages from their sending cores, the gated values they send back are
  ``embedded`` messages;
- ``spikes``: spikes emitted;
- ``msgs``: messages: every spike or non-zero graded value is sent once to each distinct core
  holding a synapse or operand that reads it; ``in_tile`` are those whose destination is the
  sending core itself (no hop), ``hops_ew`` / ``hops_ns`` the Manhattan mesh hops of the rest.
  Behind a random spike gate only the spikes that pass are sent (and drive synaptic ops);
  ``spikes`` still counts every spike the neurons emit;
  The embedded processor's static values (the stem output) are sent once per inference, as
  bias currents the compartments keep (no mesh position is modelled for it: no hops).

All connectivity is worked out once at setup (:class:`hw_sim.connectivity.CountPlan`); per
step the counting is a few tensor operations on the non-zero masks the executor hands over
(:class:`Counter` is its hook). Synaptic ops happen where the weights live, at the core
holding the output, so per-core ops are sums of per-output ops over each core's chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from exporters.loihi.processes import Process

from .connectivity import CountPlan, SynTable, segsum

CORE_KEYS = ("ac", "mac", "dsmm", "active", "idle", "spikes", "msgs", "in_tile", "hops_ew", "hops_ns")
EMBEDDED_KEYS = ("ac", "mac", "msgs")
#: message counting gathers per event when fewer than 1 / SPARSE_FACTOR of the senders are active (a gather
#: and a scattered add per event cost about this many times one element of the dense per-core product)
SPARSE_FACTOR = 8


@dataclass
class Counts:
    """Counts of one batch: ``core[key]`` ``[T, B, cores]``, ``embedded[key]`` ``[B]``, per-layer sums."""

    core: dict[str, torch.Tensor]
    embedded: dict[str, torch.Tensor]
    layers: dict[str, dict] = field(default_factory=dict)   # name -> ac, mac, nonzero, elements, dense_macs

    @property
    def batch(self) -> int:
        """Samples in the batch."""
        return self.core["ac"].shape[1]


class Counter:
    """The executor hook: accumulates :class:`Counts` for one batch of ``B`` samples over ``T`` steps."""

    def __init__(self, plan: CountPlan, T: int, B: int):
        self.plan = plan
        self.counts = Counts({k: torch.zeros(T, B, plan.ncores, dtype=torch.float64) for k in CORE_KEYS},
                             {k: torch.zeros(B, dtype=torch.float64) for k in EMBEDDED_KEYS})

    def __call__(self, t: int, p: Process, out: torch.Tensor, inp, active) -> None:
        plan, cc = self.plan, self.counts.core
        if p.name in plan.syn:
            self._synaptic(t, plan.syn[p.name], inp)
        if p.name in plan.host_ops:
            self._host(p, plan.host_ops[p.name], inp)
        g = plan.groups.get(p.name)
        if g is not None:   # compartment updates; graded integrators are active when their input is non-zero
            sl = slice(g.first_core, g.first_core + g.cores)
            busy = active if active is not None else out != 0
            # float32 sums are exact: a core holds at most a few thousand compartments (< 2**24)
            act = segsum(busy.flatten(1).float(), g.chunk, g.cores).double()
            cc["active"][t, :, sl] += act
            cc["idle"][t, :, sl] += plan.compartments[sl] - act
            if p.kind == "neuron":
                cc["spikes"][t, :, sl] += segsum(out.flatten(1).float(), g.chunk, g.cores).double()
        table = plan.send.get(p.name)
        if table is not None:   # a neuron's output is its own 0/1 mask
            self._messages(t, p.name, (out if p.kind == "neuron" else out != 0).flatten(1), table)

    def _messages(self, t: int, name: str, nz: torch.Tensor, table: torch.Tensor) -> None:
        g = self.plan.home_group(name)   # a spike gate sends from its neurons' cores
        if g is None:                         # from the embedded processor: deliveries only
            self.counts.embedded["msgs"] += nz.to(table.dtype) @ table[:, 1]
            return
        B, n = nz.shape
        n_events = int(torch.count_nonzero(nz))
        if n_events == 0:
            return
        if n_events * SPARSE_FACTOR < nz.numel():
            events = torch.nonzero(nz)
            # event-driven: gather each sender's table row, add it into its core (exact: integer sums < 2**24
            # in float32, as for the dense product)
            b, i = events.unbind(1)
            per = torch.zeros(B * g.cores, 4, dtype=table.dtype)
            per.index_add_(0, b * g.cores + i // g.chunk, table.view(-1, 4)[i])
            per = per.view(B, g.cores, 4)
        else:
            nz = nz.to(table.dtype)
            full = n // g.chunk      # a batched [1, chunk] @ [chunk, 4] product per core, no padded copy
            per = (nz[:, :full * g.chunk].reshape(B, full, 1, g.chunk) @ table[:full].unsqueeze(0)).squeeze(2)
            if full < g.cores:
                per = torch.cat([per, (nz[:, full * g.chunk:] @ table[full, :n - full * g.chunk]).unsqueeze(1)], 1)
        sl = slice(g.first_core, g.first_core + g.cores)
        cc = self.counts.core
        cc["in_tile"][t, :, sl] += per[..., 0]
        cc["msgs"][t, :, sl] += per[..., 0] + per[..., 1]
        cc["hops_ew"][t, :, sl] += per[..., 2]
        cc["hops_ns"][t, :, sl] += per[..., 3]

    def _host(self, p: Process, ops: dict[str, int], inp: torch.Tensor) -> None:
        """One evaluation of an embedded-processor gate on every sample: its fixed MACs and ACs."""
        B = inp.shape[0]
        layer = self.counts.layers.setdefault(p.name, {"ac": 0.0, "mac": 0.0, "nonzero": 0.0, "elements": 0,
                                                       "dense_macs": 0, "kind": "gate"})
        for key in ("ac", "mac"):
            self.counts.embedded[key] += ops[key]
            layer[key] += float(ops[key] * B)
        layer["nonzero"] += float((inp != 0).sum())
        layer["elements"] += inp.numel()
        layer["dense_macs"] += ops["mac"] * B

    def _synaptic(self, t: int, tab: SynTable, inp: torch.Tensor) -> None:
        nz = (inp != 0).float()
        layer = self.counts.layers.setdefault(tab.name, {"ac": 0.0, "mac": 0.0, "nonzero": 0.0, "elements": 0,
                                                         "dense_macs": 0, "kind": tab.kind})
        events = float(nz.sum())
        layer["nonzero"] += events
        layer["elements"] += nz.numel()
        layer["dense_macs"] += tab.dense_macs * nz.shape[0]
        if events == 0:        # no input events, no synaptic ops
            return
        if tab.group is None:
            ops = nz.flatten(1).double() @ tab.fanout
            self.counts.embedded[tab.kind] += ops
            layer[tab.kind] += float(ops.sum())
            return
        g = self.plan.groups[tab.group]
        per_core = tab.ops.per_core(nz)
        sl = slice(g.first_core, g.first_core + g.cores)
        self.counts.core[tab.kind][t, :, sl] += per_core
        if tab.dsmm:
            self.counts.core["dsmm"][t, :, sl] += per_core
        layer[tab.kind] += float(per_core.sum())


def merge_layers(total: dict[str, dict], batch: dict[str, dict]) -> None:
    """Add one batch's per-layer sums into ``total``."""
    for name, rec in batch.items():
        t = total.setdefault(name, {k: 0 for k in rec} | {"kind": rec["kind"]})
        for k, v in rec.items():
            if k != "kind":
                t[k] += v


__all__ = ["CountPlan", "Counter", "Counts", "CORE_KEYS", "EMBEDDED_KEYS", "merge_layers"]
