"""Setup of the event counters: who sends to which core, and how many synaptic ops an input costs.

Two things are worked out once per artifact (:class:`CountPlan`), so that the per-step
counting (:mod:`hw_sim.counters`) is a handful of tensor operations:

- message tables: for every element of every value that travels between cores (a group's
  output, the gated output of a group with a random spike gate, or a static value from the
  embedded processor), the number of distinct
  destination cores holding a synapse or operand that reads it, split into deliveries to
  its own core (in-tile) and to other cores, with their east-west and north-south mesh
  hops. Found by pushing each destination core's chunk of compartments back through the
  non-negative connectivity as runs of consecutive elements (:mod:`hw_sim.reach_runs`), kept
  per sender as a (core, run) table (:mod:`hw_sim.receivers`);
- synaptic op kernels: for every synapse and dual-spike matmul, one kernel of
  :mod:`hw_sim.op_kernels` (ops per output and per core from the input's non-zero mask).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hw_sim.attngate import gate_ops
from hw_sim.chips import Chip, EnergyProfile
from hw_sim.mapping import ROUTE, Mapping, group_cost
from hw_sim.processes import Process, ProcessGraph
from sresformer.progress import track

from .links import LinkTable, MeshLinks
from .op_kernels import ConvOps, DenseOps, MatmulOps, numel, product_dims, segsum
from .prodcount import ProdCount
from .prodneuron import ProdGeometry
from .reach import back
from .reach_runs import STACKED, Reach, from_indices, merged, split
from .receivers import RunTable


def _synapse_ops(p: Process, pg: ProcessGraph, chunk: int, cores: int):
    return ConvOps(p, chunk, cores) if p.attrs.op == "conv" else DenseOps(p, chunk, cores)


def _synapse_dense(p: Process, pg: ProcessGraph) -> int:
    """Synaptic ops per step when every input is non-zero: outputs x fan-in."""
    return numel(p.out_shape) * numel(p.params["weight"].shape[1:])


def _dsmm_dense(p: Process, pg: ProcessGraph) -> int:
    return numel(p.out_shape) * product_dims(p, pg).k


@dataclass(frozen=True)
class SynapticRule:
    """How a kind does synaptic work: its per-core op kernel, its dense op count, whether it is a dsmm
    (counted in ``dsmm`` too), whether a graded input makes its ops MACs, and whether its spike input
    is its second operand (a dsmm's ``spk``) rather than its summed sources."""

    ops: object                 # (p, pg, chunk, cores) -> kernel with ``per_core(nz)``
    dense: object               # (p, pg) -> ops per step with every input non-zero
    dsmm: bool
    graded_mac: bool
    spikes_on_operand: bool


@dataclass(frozen=True)
class CountRule:
    """How a kind's events are counted: ``syn`` its synaptic work (None: none), ``host`` its fixed
    embedded-processor ops per evaluation (None: none), ``emits`` whether its outputs are spikes the
    chip's neurons emit (counted in ``spikes``)."""

    syn: SynapticRule | None = None
    host: object = None
    emits: bool = False
    products: object = None     # (p, pg, mapping, readers) -> a counter of its own (hw_sim/prodcount.py)


#: process kind -> how its events are counted (tests/hw_sim/test_kernel_tables.py: every kind)
COUNT_RULES = {
    "input": CountRule(),
    "synapse": CountRule(syn=SynapticRule(_synapse_ops, _synapse_dense, False, True, False)),
    "neuron": CountRule(emits=True),
    "sum": CountRule(),
    "dsmm": CountRule(syn=SynapticRule(MatmulOps, _dsmm_dense, True, False, True)),
    "prodmm": CountRule(products=ProdCount),
    "sumpool": CountRule(),
    "maxpool": CountRule(),
    "flatten": CountRule(),
    "attngate": CountRule(host=gate_ops),
    "gate": CountRule(),
}


# -- the plan ---------------------------------------------------------------------------------------

def _split(table: torch.Tensor) -> torch.Tensor:
    """A per-core message table ``[cores, chunk, R]`` as ``[cores, parts, chunk / parts, R]`` in float32
    (``R = len(ROUTE)``, the route columns).

    A part's per-step sum is at most its rows' total (every element sending), so float32 sums
    (exact below 2**24) serve when every part's total is below it: the fewest parts (a divisor
    of ``chunk``) that achieve this; float64 in one part when no divisor does.
    """
    cores, chunk, _ = table.shape
    for parts in (d for d in range(1, chunk + 1) if chunk % d == 0):
        split = table.view(cores, parts, chunk // parts, len(ROUTE))
        if table.numel() == 0 or float(split.sum(2).max()) < 2 ** 24:
            return split.float()
    return table.unsqueeze(1)


@dataclass
class SynTable:
    """How to count one synaptic process: per-output op kernel (on a core) or total fan-out (host)."""

    name: str
    group: str | None              # None: on the embedded processor
    kind: str                      # "ac" (binary input) or "mac" (graded input)
    ops: object | None             # nz input [B, ...] -> .per_core: ops per core [B, cores] (on a core)
    fanout: torch.Tensor | None    # [inputs]: ops per non-zero input (host)
    dense_macs: int                # per step, every connection whatever the input
    dsmm: bool = False
    spikes_in: bool = False        # the input (spike operand) is one neuron's or gate's 0/1 spikes


class CountPlan:
    """All connectivity of an artifact, worked out once: op kernels, message tables, pipeline delays."""

    def __init__(self, pg: ProcessGraph, mapping: Mapping, links: EnergyProfile | None = None):
        """``links``: the profile whose link latencies the detailed timing model uses; given, the plan also
        holds every sender's messages on the mesh links (:mod:`hw_sim.links`; a larger setup)."""
        self.pg, self.mapping = pg, mapping
        self.groups, self.placement = mapping.groups, mapping.placement
        # cores in use (groups may share one in a hand-made mapping; map_graph never does)
        self.ncores = max((g.first_core + g.cores for g in self.groups.values()), default=0)
        self.syn: dict[str, SynTable] = {}
        # sender -> [cores, parts, chunk / parts, len(ROUTE)] (float32 when exact, see _split) or host [n, len(ROUTE)]
        self.send: dict[str, torch.Tensor] = {}
        self.upstream: dict[str, set[str]] = defaultdict(set)
        self._conn: dict[str, torch.Tensor] = {}
        self._runs: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)   # sender -> (core, runs it reads)
        self._reach = Reach(pg)
        # embedded-processor processes that run at every step (MA gates): a stage of the pipeline
        self.step_host = {p.name for p in pg if p.host and not p.static}
        for p in pg:
            if COUNT_RULES[p.kind].syn is not None:
                self.syn[p.name] = self._table(p)
        self.prod_readers: dict[str, list[str]] = defaultdict(list)   # prodmm -> groups its terms sum in
        for g in track(self.groups.values(), "simulator set-up", unit="group"):
            self._group(g)
        self.prod = {p.name: COUNT_RULES[p.kind].products(p, pg, mapping, self.prod_readers[p.name])
                     for p in pg if COUNT_RULES[p.kind].products is not None}
        self.held = {o for p in pg if p.name in self.prod for o in p.operands}   # operands the counter keeps
        # a core that holds a dynamic operand rewrites its entries every step (loihi2-opmem)
        self.operand_writes: dict[str, torch.Tensor] = {}
        if mapping.chip.get("dynamic_operand_memory"):
            chip = Chip(**mapping.chip)
            for g in self.groups.values():
                for name, entries in group_cost(pg, g, chip, mapping.host).operand_entries(g.chunk).items():
                    self.operand_writes[name] = torch.from_numpy(entries).double()   # per dsmm, [group cores]
        # embedded-processor work at every step (MA gates): its fixed op counts, and its inputs,
        # which every sending core delivers to the embedded processor (one message per non-zero value)
        self.host_ops: dict[str, dict[str, int]] = {}
        for p in pg:
            host = COUNT_RULES[p.kind].host
            if host is not None:
                self.host_ops[p.name] = host(p)
                if not p.static:
                    for s in p.sources:
                        sender = self._sender(s)
                        self._to_host(sender)
                        if sender in self.groups or sender in self.step_host:
                            self.upstream[p.name].add(sender)
        self._receivers()
        for name, acc in self._conn.items():
            g = self.home_group(name)
            if name in self.recv:
                acc += torch.from_numpy(self.recv[name].routes(self.mapping.route_columns, g, len(ROUTE)))
            if g is not None:
                acc = _split(F.pad(acc, (0, 0, 0, g.cores * g.chunk - acc.shape[0])).view(g.cores, g.chunk, len(ROUTE)))
            self.send[name] = acc
        del self._conn, self._runs, self._reach
        self._layout()
        self.encoding = self._encodings()
        self.links = self._link_tables(links) if links is not None else None

    def _receivers(self) -> None:
        """Per sender, its :class:`hw_sim.receivers.RunTable`: which cores read which runs of its elements."""
        self.recv: dict[str, RunTable] = {
            name: RunTable(items, numel(self.pg.processes[name].out_shape), self.ncores)
            for name, items in self._runs.items()}
        xs, ys = self.mapping.core_xy(np.arange(self.ncores))
        self.tiles = len(set(zip(xs.tolist(), ys.tolist(), strict=True)))

    def _encodings(self) -> dict[str, dict[str, torch.Tensor]]:
        """Synapse process -> encoding -> the columns (cores of its group) whose synapses use it."""
        self.encodings_known = True
        try:
            chip = Chip(**self.mapping.chip)
        except (TypeError, ValueError):   # an artifact older than some chip field: encodings unknown
            self.encodings_known = False
            return {}
        out: dict[str, dict[str, torch.Tensor]] = {}
        for g in self.groups.values():
            if self.pg.processes[g.name].kind == "prodmm":
                continue
            for name, per_core in group_cost(self.pg, g, chip, self.mapping.host).encodings(g.chunk).items():
                out[name] = {e: torch.from_numpy(np.nonzero(per_core == e)[0]) for e in np.unique(per_core)}
        return out

    def _link_tables(self, profile: EnergyProfile) -> dict:
        """Per sender on a core, its :class:`hw_sim.links.LinkTable`."""
        self.mesh = MeshLinks(self.mapping, self.ncores)
        self.link_ns = self.mesh.link_ns(profile)
        self.link_kind_ns = torch.tensor([profile.hop_ew_ns, profile.hop_ns_ns, profile.chip_link_ns],
                                         dtype=torch.float64)
        out = {}
        for name, table in self.recv.items():
            g = self.home_group(name)
            if g is None:
                continue
            n = numel(self.pg.processes[name].out_shape)
            src = g.first_core + np.arange(n) // g.chunk
            out[name] = LinkTable(self.mesh, src, table.edges(), n)
        for name, pc in self.prod.items():   # product terms to their readers
            pc.route_links(self.mesh, self.delay[name], self.link_kind_ns)
        return out

    def group_delay(self, g) -> int:
        """Pipeline delay (chip steps) of group ``g``."""
        return self.delay[g.name]

    def home_group(self, name: str):
        """The group whose cores send value ``name``: its own, or a spike gate's neurons' (None: host)."""
        g = self.groups.get(name)
        if g is None and self.pg.processes[name].kind == "gate":   # (the one kind that sends from another's cores)
            g = self.groups.get(self.placement.get(name))
        return g

    def _table(self, p: Process) -> SynTable:
        rule = COUNT_RULES[p.kind].syn
        group = self.placement.get(p.name, "host")
        spikes_in = self.pg.spikes_only(p.operands[1:] if rule.spikes_on_operand else p.sources)
        kind = "mac" if rule.graded_mac and p.attrs.graded_input else "ac"
        dense = rule.dense(p, self.pg)
        if group == "host":
            fan = back(p, self.pg, torch.ones(numel(p.out_shape)))[-1][1].double()
            return SynTable(p.name, None, kind, None, fan, dense, rule.dsmm, spikes_in)
        if numel(p.out_shape) != self.groups[group].size:
            raise NotImplementedError(f"{p.name!r}: co-located with {group!r} but not element for element")
        g = self.groups[group]
        return SynTable(p.name, group, kind, rule.ops(p, self.pg, g.chunk, g.cores), None, dense, rule.dsmm,
                        spikes_in)

    def _sender(self, name: str) -> str:
        """The value that travels: look through aliases and flattens inside the sender's group."""
        while name not in self.groups and self.placement.get(name) != "host" \
                and self.pg.processes[name].kind in ("sum", "flatten") and len(self.pg.processes[name].sources) == 1:
            name = self.pg.processes[name].sources[0]
        return name

    def _prod_group(self, g) -> None:
        """The product compartments of a prodmm: each core reads the distinct operand elements of its terms."""
        geo = ProdGeometry(self.pg.processes[g.name], self.pg)
        every = geo.operand_runs(g.chunk, g.cores)
        if every is not None:   # all cores at once (DSSA's and SSA's forms read R untransposed)
            for operand, core, runs in every:
                sender = self._sender(operand)
                self._add_upstream(g, sender)
                self._connect(sender, g.first_core + core, runs)
            return
        for c in range(g.cores):
            for operand, idx in geo.operand_elements(c * g.chunk, min((c + 1) * g.chunk, g.size)):
                sender = self._sender(operand)
                self._add_upstream(g, sender)
                self._connect(sender, g.first_core + c, from_indices(np.sort(idx)))   # (distinct already)

    def _group(self, g) -> None:
        if self.pg.processes[g.name].kind == "prodmm":
            return self._prod_group(g)
        members = [p for p in reversed(list(self.pg)) if self.placement.get(p.name) == g.name]
        if all(p.kind in STACKED for p in members):
            return self._stacked_group(g, members)
        for c in range(g.cores):
            # what core c's compartments read, as runs of each source's flat elements (hw_sim/reach_runs.py)
            own = np.array([[c * g.chunk, min((c + 1) * g.chunk, g.size)]], dtype=np.int64)
            for h, runs in self._push(g, members, own).items():
                self._note_upstream(g, h)
                if self.pg.processes[h].kind != "prodmm":   # a product's terms' messages: hw_sim/prodcount.py
                    self._connect(h, g.first_core + c, runs)

    def _push(self, g, members, own: np.ndarray) -> dict[str, np.ndarray]:
        """Runs of each outside value that group ``g``'s selection ``own`` (runs of its outputs) reads: the
        selection pushed back through the group's members (``members`` in reverse graph order)."""
        masks, reach = {g.name: own}, {}
        for p in members:
            m = masks.pop(p.name, None)
            if m is None:
                continue
            for src, runs in self._reach.back(p, m):
                inside = self.placement.get(src) == g.name and src != g.name
                key = src if inside else self._sender(src)
                target = masks if inside else reach
                target[key] = merged(np.concatenate([target[key], runs])) if key in target else runs
        return reach

    def _stacked_group(self, g, members) -> None:
        """``_group`` for all cores at once, when every member's reach is the same map at every core:
        process ``p``'s selection at core ``c`` sits at ``c * size(p)`` of one stacked index (a product's
        operand formulas take the cores as further heads; the elementwise kinds keep the index)."""
        c = np.arange(g.cores, dtype=np.int64)
        own = np.stack([c * g.chunk, np.minimum((c + 1) * g.chunk, g.size)], 1)   # each core's chunk
        for h, runs in self._push(g, members, merged(own + (c * g.size)[:, None])).items():
            self._note_upstream(g, h)
            if self.pg.processes[h].kind != "prodmm":   # a product's terms' messages: hw_sim/prodcount.py
                n = numel(self.pg.processes[h].out_shape)
                pieces, _ = split(runs, n)
                core = pieces[:, 0] // n
                self._connect(h, g.first_core + core, pieces - (core * n)[:, None])

    def _add_upstream(self, g, h: str) -> None:
        """Group ``g`` reads value ``h``: the group or embedded-processor stage sending it is upstream of ``g``."""
        home = self.home_group(h)
        if h in self.step_host:
            self.upstream[g.name].add(h)
        elif home is not None:
            self.upstream[g.name].add(home.name)

    def _note_upstream(self, g, h: str) -> None:
        """Group ``g`` reads value ``h``: its pipeline's upstream, and a product's readers."""
        self._add_upstream(g, h)
        if self.pg.processes[h].kind == "prodmm" and g.name not in self.prod_readers[h]:
            self.prod_readers[h].append(g.name)

    def _to_host(self, sender: str) -> None:
        """Every element of group ``sender`` is delivered to the embedded processor (no mesh hops modelled)."""
        if sender not in self.groups:
            return   # already on the embedded processor
        self._acc(sender)[:, 1] += 1

    def _connect(self, sender: str, core, runs: np.ndarray) -> None:
        """The elements of ``sender`` in ``runs`` each send one message to ``core`` (one core, or one per run;
        a core's runs disjoint); their routes (ROUTE, hw_sim/mapping.py) are summed once all connections are
        known (``RunTable.routes``)."""
        self._acc(sender)
        if len(runs):
            self._runs[sender].append((core, runs))

    def _acc(self, sender: str) -> torch.Tensor:
        """The message table being built for ``sender``: ``[elements, len(ROUTE)]``, zeros at first."""
        acc = self._conn.get(sender)
        if acc is None:
            acc = self._conn[sender] = torch.zeros(numel(self.pg.processes[sender].out_shape), len(ROUTE),
                                                  dtype=torch.float64)
        return acc

    def _layout(self) -> None:
        """Pipeline delay per group (one more than its slowest upstream group) and per-core tables.

        An embedded-processor gate between two groups is a pipeline stage of its own (one step:
        it needs a step's values before it can send the gated ones back).
        """
        self.delay: dict[str, int] = {}
        for p in self.pg:   # graph (topological) order
            if p.name in self.groups or p.name in self.step_host:
                self.delay[p.name] = 1 + max((self.delay[u] for u in self.upstream.get(p.name, ())), default=-1)
        self.core_delay = np.zeros(self.ncores, dtype=np.int64)
        self.compartments = torch.zeros(self.ncores, dtype=torch.float64)
        self.core_group: list[str] = [""] * self.ncores
        for g in self.groups.values():
            sl = slice(g.first_core, g.first_core + g.cores)
            self.core_delay[sl] = self.delay[g.name]
            if self.pg.processes[g.name].kind != "input":   # injected values: no compartment updates
                self.compartments[sl] += segsum(torch.ones(1, g.size, dtype=torch.float64), g.chunk, g.cores)[0]
            self.core_group[sl] = [g.name] * g.cores

    @property
    def depth(self) -> int:
        """Extra chip steps of the pipelined schedule: the largest group delay."""
        return int(self.core_delay.max(initial=0))
