"""Setup of the event counters: who sends to which core, and how many synaptic ops an input costs.

Two things are worked out once per artifact (:class:`CountPlan`), so that the per-step
counting (:mod:`hw_sim.counters`) is a handful of tensor operations:

- message tables: for every element of every value that travels between cores (a group's
  output, the gated output of a group with a random spike gate, or a static value from the
  embedded processor), the number of distinct
  destination cores holding a synapse or operand that reads it, split into deliveries to
  its own core (in-tile) and to other cores, with their east-west and north-south mesh
  hops. Found by pushing a one-hot mask of each destination core's compartments back
  through the non-negative connectivity: transposed convolutions with ``|W| > 0`` kernels,
  pooling windows, the matmul's operand pattern (:func:`back`);
- synaptic op kernels: for every synapse and dual-spike matmul, a function from the
  non-zero mask of its input to the ops each of its outputs receives (:class:`ConvOps`,
  ...). Ops are done where the weights live, i.e. at the core holding the output, so
  per-core counts are sums over each core's chunk of outputs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input

from exporters.loihi.mapping import Mapping
from exporters.loihi.processes import Process, ProcessGraph


def numel(shape) -> int:
    """Elements of a shape (1 for a scalar)."""
    return int(np.prod(shape)) if len(shape) else 1


def segsum(x: torch.Tensor, chunk: int, cores: int) -> torch.Tensor:
    """Sums of ``x [B, n]`` over consecutive chunks of ``chunk`` elements: ``[B, cores]`` (no padded copy)."""
    B, n = x.shape
    full = n // chunk
    out = x[:, :full * chunk].reshape(B, full, chunk).sum(-1)
    if full < cores:   # the last core's partial chunk
        out = torch.cat([out, x[:, full * chunk:].sum(-1, keepdim=True)], 1)
    return out


# -- connectivity pushed backwards: stored synapses from each input into a set of outputs ---------

def _back_conv(p: Process, m: torch.Tensor, in_shape) -> torch.Tensor:
    w = torch.from_numpy(np.asarray(p.params["weight"]) != 0).float()
    a = p.attrs
    cout, cin_g = w.shape[0], w.shape[1]
    cout_g = cout // a["groups"]
    m = m.view(cout, *p.out_shape[1:])
    out = torch.zeros(in_shape)
    chans = torch.nonzero(m.flatten(1).any(1)).flatten()
    if chans.numel() == 0:
        return out.flatten()
    lo, hi = int(chans[0]), int(chans[-1]) + 1
    for g in range(lo // cout_g, (hi - 1) // cout_g + 1):   # one conv per group spanned, on its channels only
        a0, a1 = max(lo, g * cout_g), min(hi, (g + 1) * cout_g)
        out[g * cin_g:(g + 1) * cin_g] += conv2d_input((1, cin_g, *in_shape[1:]), w[a0:a1], m[a0:a1].unsqueeze(0),
                                                       a["stride"], a["padding"], a["dilation"], 1)[0]
    return out.flatten()


def _back_pool(p: Process, m: torch.Tensor, in_shape) -> torch.Tensor:
    a = p.attrs
    ones = torch.ones(in_shape[0], 1, *a["kernel"])
    return conv2d_input((1, *in_shape), ones, m.view(1, *p.out_shape), a["stride"], a["padding"], 1,
                        in_shape[0])[0].flatten()


def _dsmm_dims(p: Process, pg: ProcessGraph) -> tuple[int, int, int, int]:
    """``(heads, d, n, hw)``: heads, channels per head half, tokens of the dynamic operand, spike columns."""
    y = pg.processes[p.operands[0]]
    heads = p.attrs["heads"]
    return heads, y.out_shape[0] // (2 * heads), numel(y.out_shape[1:]), numel(p.out_shape[1:])


def _back_dsmm(p: Process, pg: ProcessGraph, m: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    heads, d, n, hw = _dsmm_dims(p, pg)
    y1 = p.attrs["form"] == "y1T@s"
    mo = m.view(heads, n if y1 else d, hw)
    per_col, per_row = mo.sum(1), mo.sum(2)      # selected outputs per column p / per row
    spk = per_col.unsqueeze(1).expand(heads, d if y1 else n, hw)   # spk[h, k, p] adds into column p
    dyn = torch.zeros(heads, 2 * d, n)
    if y1:     # y[h, k, i] (k < d) feeds out[h, i, :]
        dyn[:, :d] = per_row.unsqueeze(1)
    else:      # y[h, d + c, j] feeds out[h, c, :]
        dyn[:, d:] = per_row.unsqueeze(2)
    return [(p.operands[0], dyn.flatten()), (p.operands[1], spk.flatten())]


def back(p: Process, pg: ProcessGraph, m: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """``(source, counts over the source's flat output)`` reaching the outputs selected by flat mask ``m``."""
    if p.kind == "dsmm":
        return _back_dsmm(p, pg, m)
    if p.kind == "input":
        return []
    in_shape = pg.processes[p.sources[0]].out_shape
    if p.kind == "synapse" and p.attrs["op"] == "conv":
        c = _back_conv(p, m, in_shape)
    elif p.kind == "synapse":
        c = m @ torch.from_numpy(np.asarray(p.params["weight"]) != 0).float()
    elif p.kind in ("sumpool", "maxpool"):
        c = _back_pool(p, m, in_shape)
    else:      # neuron, sum, flatten: element for element
        c = m
    return [(s, c) for s in p.sources]


# -- synaptic ops per output, from the non-zero mask of the input -----------------------------------

class ConvOps:
    """Ops per conv output: stored synapses whose input is non-zero.

    A window count over the group's summed input (as if every tap were stored) minus the
    taps whose mantissa is zero, gathered tap by tap; when most taps are zero, the stored
    taps are gathered instead. Cost: a few shifted adds, not a second convolution.
    """

    def __init__(self, p: Process):
        w = np.asarray(p.params["weight"])
        a = p.attrs
        self.cout, self.cin_g, self.kh, self.kw = w.shape
        self.groups = a["groups"]
        self.stride, self.pad, self.dil = a["stride"], a["padding"], a["dilation"]
        self.oh, self.ow = p.out_shape[1:]
        zeros = int((w == 0).sum())
        self.box = zeros <= w.size - zeros
        entries = np.argwhere(w == 0) if self.box else np.argwhere(w != 0)
        taps = defaultdict(list)
        cout_g = self.cout // self.groups
        for oc, ci, ky, kx in entries:
            taps[(int(ky), int(kx))].append((int(oc), int(oc) // cout_g * self.cin_g + int(ci)))
        self.taps = {k: (torch.tensor([e[0] for e in v]), torch.tensor([e[1] for e in v])) for k, v in taps.items()}

    def _tap(self, xp: torch.Tensor, ky: int, kx: int) -> torch.Tensor:
        (sh, sw), (dh, dw) = self.stride, self.dil
        y0, x0 = ky * dh, kx * dw
        return xp[:, :, y0:y0 + sh * (self.oh - 1) + 1:sh, x0:x0 + sw * (self.ow - 1) + 1:sw]

    def __call__(self, nz: torch.Tensor) -> torch.Tensor:
        B = nz.shape[0]
        ph, pw = self.pad
        if self.box:   # channel sums first: the window count works on G planes, not C
            s = nz.view(B, self.groups, self.cin_g, *nz.shape[-2:]).sum(2)
            if self.dil == (1, 1):   # zero-padded window sums in one kernel
                win = F.avg_pool2d(s, (self.kh, self.kw), self.stride, self.pad, divisor_override=1)
            else:
                s = F.pad(s, (pw, pw, ph, ph))
                win = sum(self._tap(s, ky, kx) for ky in range(self.kh) for kx in range(self.kw))
            out = win.repeat_interleave(self.cout // self.groups, dim=1)
            sign = -1
        else:
            out = torch.zeros(B, self.cout, self.oh, self.ow)
            sign = 1
        xp = F.pad(nz, (pw, pw, ph, ph)) if self.taps else None
        for (ky, kx), (oc, ci) in self.taps.items():
            out.index_add_(1, oc, self._tap(xp, ky, kx)[:, ci], alpha=sign)
        return out.flatten(1)


class DenseOps:
    """Ops per dense output: stored weights whose input is non-zero."""

    def __init__(self, p: Process):
        self.mask = torch.from_numpy(np.asarray(p.params["weight"]) != 0).float()

    def __call__(self, nz: torch.Tensor) -> torch.Tensor:
        return nz.flatten(1) @ self.mask.T


class MatmulOps:
    """Ops per dual-spike-matmul output: spikes in its column (each adds one operand entry to it)."""

    def __init__(self, p: Process, pg: ProcessGraph):
        self.heads, self.d, self.n, self.hw = _dsmm_dims(p, pg)
        self.y1 = p.attrs["form"] == "y1T@s"

    def __call__(self, nz: torch.Tensor) -> torch.Tensor:
        B = nz.shape[0]
        k, rows = (self.d, self.n) if self.y1 else (self.n, self.d)
        col = nz.reshape(B, self.heads, k, self.hw).sum(2, keepdim=True)
        return col.expand(B, self.heads, rows, self.hw).reshape(B, -1)


# -- the plan ---------------------------------------------------------------------------------------

@dataclass
class SynTable:
    """How to count one synaptic process: per-output op kernel (on a core) or total fan-out (host)."""

    name: str
    group: str | None              # None: on the embedded processor
    kind: str                      # "ac" (binary input) or "mac" (graded input)
    ops: object | None             # nz input [B, ...] -> ops per output [B, n_out] (on a core)
    fanout: torch.Tensor | None    # [inputs]: ops per non-zero input (host)
    dense_macs: int                # per step, every connection whatever the input
    dsmm: bool = False


class CountPlan:
    """All connectivity of an artifact, worked out once: op kernels, message tables, pipeline delays."""

    def __init__(self, pg: ProcessGraph, mapping: Mapping):
        self.pg, self.mapping = pg, mapping
        self.groups, self.placement = mapping.groups, mapping.placement
        # cores in use (groups may share one in a hand-made mapping; map_graph never does)
        self.ncores = max((g.first_core + g.cores for g in self.groups.values()), default=0)
        self.syn: dict[str, SynTable] = {}
        self.send: dict[str, torch.Tensor] = {}        # sender -> [cores, chunk, 4] or host [n, 4]
        self.upstream: dict[str, set[str]] = defaultdict(set)
        self._conn: dict[str, torch.Tensor] = {}
        for p in pg:
            if p.kind in ("synapse", "dsmm"):
                self.syn[p.name] = self._table(p)
        for g in self.groups.values():
            self._group(g)
        for name, acc in self._conn.items():
            g = self.home_group(name)
            if g is not None:
                acc = F.pad(acc, (0, 0, 0, g.cores * g.chunk - acc.shape[0])).view(g.cores, g.chunk, 4)
                # a core's per-step sums are at most chunk x the largest entry: float32 when that is exact
                if acc.numel() == 0 or float(acc.max()) * g.chunk < 2 ** 24:
                    acc = acc.float()
            self.send[name] = acc
        del self._conn
        self._layout()

    def home_group(self, name: str):
        """The group whose cores send value ``name``: its own, or a spike gate's neurons' (None: host)."""
        g = self.groups.get(name)
        if g is None and self.pg.processes[name].kind == "gate":
            g = self.groups.get(self.placement.get(name))
        return g

    def _table(self, p: Process) -> SynTable:
        group = self.placement.get(p.name, "host")
        kind = "mac" if p.kind == "synapse" and p.attrs.get("graded_input", False) else "ac"
        if p.kind == "dsmm":
            heads, d, n, hw = _dsmm_dims(p, self.pg)
            dense = numel(p.out_shape) * (d if p.attrs["form"] == "y1T@s" else n)
        else:
            dense = numel(p.out_shape) * numel(p.params["weight"].shape[1:])
        if group == "host":
            fan = back(p, self.pg, torch.ones(numel(p.out_shape)))[-1][1].double()
            return SynTable(p.name, None, kind, None, fan, dense, p.kind == "dsmm")
        if numel(p.out_shape) != self.groups[group].size:
            raise NotImplementedError(f"{p.name!r}: co-located with {group!r} but not element for element")
        ops = MatmulOps(p, self.pg) if p.kind == "dsmm" else ConvOps(p) if p.attrs["op"] == "conv" else DenseOps(p)
        return SynTable(p.name, group, kind, ops, None, dense, p.kind == "dsmm")

    def _sender(self, name: str) -> str:
        """The value that travels: look through aliases and flattens inside the sender's group."""
        while name not in self.groups and self.placement.get(name) != "host" \
                and self.pg.processes[name].kind in ("sum", "flatten") and len(self.pg.processes[name].sources) == 1:
            name = self.pg.processes[name].sources[0]
        return name

    def _group(self, g) -> None:
        members = [p for p in reversed(list(self.pg)) if self.placement.get(p.name) == g.name]
        for c in range(g.cores):
            masks = {g.name: torch.zeros(g.size)}
            masks[g.name][c * g.chunk:(c + 1) * g.chunk] = 1.0
            reach: dict[str, torch.Tensor] = {}
            for p in members:
                m = masks.pop(p.name, None)
                if m is None:
                    continue
                for src, cnt in back(p, self.pg, m):
                    inside = self.placement.get(src) == g.name and src != g.name
                    key = src if inside else self._sender(src)
                    target = masks if inside else reach
                    target[key] = target[key] + cnt if key in target else cnt
            for h, cnt in reach.items():
                home = self.home_group(h)
                if home is not None:
                    self.upstream[g.name].add(home.name)
                self._connect(h, g.first_core + c, torch.nonzero(cnt > 0).flatten())

    def _connect(self, sender: str, core: int, idx: torch.Tensor) -> None:
        """Elements ``idx`` of ``sender`` each send one message to ``core``: [in-tile, other core, EW, NS hops]."""
        acc = self._conn.setdefault(sender, torch.zeros(numel(self.pg.processes[sender].out_shape), 4,
                                                        dtype=torch.float64))
        g = self.home_group(sender)
        if g is None:                        # the embedded processor: deliveries, no mesh position
            acc[idx, 1] += 1
            return
        # every quantity depends on the element only through its core: build a per-source-core
        # table for this destination, then gather it for the elements (cheap for big groups)
        src = g.first_core + np.arange(g.cores)
        sx, sy = self.mapping.core_xy(src)
        dx, dy = self.mapping.core_xy(np.asarray(core))
        same = (src == core).astype(np.float64)
        table = torch.from_numpy(np.stack([same, 1 - same, np.abs(sx - dx), np.abs(sy - dy)], 1).astype(np.float64))
        acc.index_add_(0, idx, table[idx // g.chunk])

    def _layout(self) -> None:
        """Pipeline delay per group (one more than its slowest upstream group) and per-core tables."""
        self.delay: dict[str, int] = {}
        for name in self.groups:   # groups are in graph (topological) order
            self.delay[name] = 1 + max((self.delay[u] for u in self.upstream.get(name, ())), default=-1)
        self.core_delay = np.zeros(self.ncores, dtype=np.int64)
        self.compartments = torch.zeros(self.ncores, dtype=torch.float64)
        self.core_group: list[str] = [""] * self.ncores
        for g in self.groups.values():
            sl = slice(g.first_core, g.first_core + g.cores)
            self.core_delay[sl] = self.delay[g.name]
            self.compartments[sl] += segsum(torch.ones(1, g.size, dtype=torch.float64), g.chunk, g.cores)[0]
            self.core_group[sl] = [g.name] * g.cores

    @property
    def depth(self) -> int:
        """Extra chip steps of the pipelined schedule: the largest group delay."""
        return int(self.core_delay.max(initial=0))
