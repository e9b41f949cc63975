"""Exact event counts per core and per time step, from the executor's tensors.

What is counted (per sample, per step ``t``, per neuro core; host work in an ``embedded``
bucket, once per inference because static processes run once):

- ``ac``: synaptic accumulates driven by binary spikes, each spike's real fan-out into each
  core (borders, strides and groups exact; only non-zero stored weights count), plus DSSA's
  gated accumulations (``dsmm``: a spike adds one column of the dynamic operand, so it costs
  the column length, split by the cores holding the column's outputs); ``dsmm`` repeats the
  latter on its own;
  a rate-normalised neuron's register additions (``hw_sim/ratenorm.py``: ``ADDS_PER_STEP`` per
  compartment and step, ``ADDS_PER_SPIKE`` per spike) are ``ac`` too;
- ``mac``: synaptic multiply-accumulates driven by non-zero graded values (the readout
  classifier; the stem on the embedded processor), same fan-out rule;
- ``active`` / ``idle``: compartment updates of every group's compartments but an input's (its
  values are injected, not computed; neurons: active
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
  sending core's tile (no hop; one core a tile unless the chip says ``cores_per_tile``),
  ``hops_ew`` / ``hops_ns`` the on-chip mesh hops of the rest (dimension-order routing), and
  ``chip_links`` the chip-to-chip links they cross (:meth:`hw_sim.mapping.Mapping.route`).
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

from hw_sim.links import add_links
from hw_sim.mapping import ROUTE, add_routes
from hw_sim.processes import Process

from .connectivity import COUNT_RULES, CountPlan, SynTable
from .op_kernels import segsum
from .ratenorm import ADDS_PER_SPIKE, ADDS_PER_STEP

CORE_KEYS = ("ac", "mac", "dsmm", "active", "idle", "spikes", "msgs", "in_tile", "hops_ew", "hops_ns",
             "chip_links", "msgs_in", "syn_conv", "syn_dense", "syn_sparse", "operand_writes")
EMBEDDED_KEYS = ("ac", "mac", "msgs")


@dataclass
class Counts:
    """Counts of one batch: ``core[key]`` ``[T, B, cores]``, ``embedded[key]`` ``[B]``, per-layer sums."""

    core: dict[str, torch.Tensor]
    embedded: dict[str, torch.Tensor]
    layers: dict[str, dict] = field(default_factory=dict)   # name -> ac, mac, nonzero, elements, dense_macs
    # detailed timing only: sender delay -> (messages per link [T, B, links], longest path [T, B] in ns)
    links: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

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
        self.held: dict[str, torch.Tensor] = {}   # operands of prodmm products, until the product is counted

    def __call__(self, p: Process, out: torch.Tensor, inp, active) -> None:
        """Count one process's work over its steps: ``out`` (and ``inp``, ``active``) ``[S, B, ...]``."""
        plan, cc = self.plan, self.counts.core
        S, B = out.shape[:2]
        if p.name in plan.held:
            self.held[p.name] = out
        if p.name in plan.prod:   # product compartments: their own counting (hw_sim/prodcount.py)
            plan.prod[p.name].count(self.counts, self.held[p.operands[0]], inp)
            return
        writes = plan.operand_writes.get(p.name)
        if writes is not None:   # a dsmm's cores rewrite the operand entries they hold at every step
            g = plan.groups[plan.placement[p.name]]
            cc["operand_writes"][:S, :, g.first_core:g.first_core + g.cores] += writes
        if p.name in plan.syn:
            self._synaptic(plan.syn[p.name], inp)
        if p.name in plan.host_ops:
            self._host(p, plan.host_ops[p.name], inp)
        g = plan.groups.get(p.name)
        # compartment updates; graded integrators are active when their input is non-zero. An input group's
        # values are injected, not computed (Loihi's spike generators; SANA-FE's input somas): no updates
        if g is not None and p.kind != "input":
            sl = slice(g.first_core, g.first_core + g.cores)
            busy = active if active is not None else out != 0
            # exact: a boolean mask is counted as bytes into int32 (segsum)
            act = segsum(busy.view(S * B, -1), g.chunk, g.cores).double().view(S, B, -1)
            cc["active"][:S, :, sl] += act
            cc["idle"][:S, :, sl] += plan.compartments[sl] - act
            if COUNT_RULES[p.kind].emits:
                fired = segsum(out.view(S * B, -1), g.chunk, g.cores).double().view(S, B, -1)
                cc["spikes"][:S, :, sl] += fired
                if p.kind == "neuron" and p.attrs.reset == "rate":   # its register additions (hw_sim/ratenorm.py)
                    cc["ac"][:S, :, sl] += ADDS_PER_STEP * plan.compartments[sl] + ADDS_PER_SPIKE * fired
        table = plan.send.get(p.name)
        if table is not None:
            emits = COUNT_RULES[p.kind].emits   # a neuron's output is its own 0/1 mask
            self._messages(p.name, (out if emits else out != 0).reshape(S, B, -1), table)

    def _messages(self, name: str, nz: torch.Tensor, table: torch.Tensor) -> None:
        """Messages of value ``name`` (non-zero mask ``nz [S, B, n]``) from its cores to their readers."""
        g = self.plan.home_group(name)   # a spike gate sends from its neurons' cores
        S = nz.shape[0]
        nz = nz.flatten(0, 1)
        recv = self.plan.recv.get(name)
        if recv is not None:   # every message is received once, by its destination core
            got = recv.received(nz)
            self.counts.core["msgs_in"][:S] += got.view(S, -1, got.shape[-1])
        lt = self.plan.links.get(name) if self.plan.links is not None else None
        if lt is not None:
            add_links(self.counts, self.plan.group_delay(g), lt, nz, S, self.plan.link_kind_ns)
        if g is None:                         # from the embedded processor: deliveries only
            self.counts.embedded["msgs"] += (nz.to(table.dtype) @ table[:, 1]).view(S, -1).sum(0)
            return
        B, n = nz.shape
        nz = nz.to(table.dtype)
        full, parts = n // g.chunk, table.shape[1]
        # per core and part of its chunk: [B, chunk / parts] @ [chunk / parts, ROUTE], one batched product
        # over the full cores (it reads each table row once for the whole batch; a gather per event is
        # slower even at 10% activity); the parts' exact sums add up in float64
        per = torch.einsum("bcmn,cmnk->bcmk", nz[:, :full * g.chunk].view(B, full, parts, -1), table[:full])
        per = per.double().sum(2)
        if full < g.cores:   # the last core's partial chunk
            last = table[full].reshape(g.chunk, len(ROUTE))[:n - full * g.chunk].double()
            per = torch.cat([per, (nz[:, full * g.chunk:].double() @ last).unsqueeze(1)], 1)
        per = per.view(S, -1, *per.shape[1:])
        sl = slice(g.first_core, g.first_core + g.cores)
        add_routes(self.counts.core, (slice(None, S), slice(None), sl), per)

    def _host(self, p: Process, ops: dict[str, int], inp: torch.Tensor) -> None:
        """Evaluations of an embedded-processor gate on every sample at its ``S`` steps: fixed MACs and ACs."""
        S, B = inp.shape[:2]
        layer = self.counts.layers.setdefault(p.name, {"ac": 0.0, "mac": 0.0, "nonzero": 0.0, "elements": 0,
                                                       "dense_macs": 0, "kind": "gate"})
        for key in ("ac", "mac"):
            self.counts.embedded[key] += ops[key] * S
            layer[key] += float(ops[key] * S * B)
        layer["nonzero"] += float((inp != 0).sum())
        layer["elements"] += inp.numel()
        layer["dense_macs"] += ops["mac"] * S * B

    def _synaptic(self, tab: SynTable, inp: torch.Tensor) -> None:
        """Synaptic ops of one synapse or dual-spike matmul over its input ``[S, B, ...]`` of every step."""
        S, B = inp.shape[:2]
        nz = (inp if tab.spikes_in else inp != 0).flatten(0, 1).float()   # spikes are their own 0/1 mask
        layer = self.counts.layers.setdefault(tab.name, {"ac": 0.0, "mac": 0.0, "nonzero": 0.0, "elements": 0,
                                                         "dense_macs": 0, "kind": tab.kind})
        events = float(nz.sum())
        layer["nonzero"] += events
        layer["elements"] += nz.numel()
        layer["dense_macs"] += tab.dense_macs * nz.shape[0]
        if events == 0:        # no input events, no synaptic ops
            return
        if tab.group is None:
            ops = (nz.flatten(1).double() @ tab.fanout).view(S, B)
            self.counts.embedded[tab.kind] += ops.sum(0)
            layer[tab.kind] += float(ops.sum())
            return
        g = self.plan.groups[tab.group]
        per_core = tab.ops.per_core(nz).view(S, B, -1)
        sl = slice(g.first_core, g.first_core + g.cores)
        self.counts.core[tab.kind][:S, :, sl] += per_core
        if tab.kind == "ac":   # binary-spike ops by the encoding of the core's synapses (priced per encoding)
            for enc, cols in self.plan.encoding.get(tab.name, {}).items():
                self.counts.core[f"syn_{enc}"][:S, :, g.first_core + cols] += per_core[:, :, cols]
        if tab.dsmm:
            self.counts.core["dsmm"][:S, :, sl] += per_core
        layer[tab.kind] += float(per_core.sum())


def merge_layers(total: dict[str, dict], batch: dict[str, dict]) -> None:
    """Add one batch's per-layer sums into ``total``."""
    for name, rec in batch.items():
        t = total.setdefault(name, {k: 0 for k in rec} | {"kind": rec["kind"]})
        for k, v in rec.items():
            if k != "kind":
                t[k] += v


__all__ = ["CountPlan", "Counter", "Counts", "CORE_KEYS", "EMBEDDED_KEYS", "merge_layers"]
