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

from exporters.loihi.gate import gate_ops
from exporters.loihi.mapping import Mapping
from exporters.loihi.processes import HOST_KINDS, SSA_FORMS, Process, ProcessGraph, ssa_dims


def numel(shape) -> int:
    """Elements of a shape (1 for a scalar)."""
    return int(np.prod(shape)) if len(shape) else 1


def segsum(x: torch.Tensor, chunk: int, cores: int) -> torch.Tensor:
    """Sums of ``x [B, n]`` over consecutive chunks of ``chunk`` elements: ``[B, cores]`` (no padded copy).

    A boolean mask is counted as bytes into int32 (exact, and about twice as fast as converting it).
    """
    B, n = x.shape
    full = n // chunk
    kw = {}
    if x.dtype == torch.bool:
        x, kw = x.view(torch.uint8), {"dtype": torch.int32}
    out = x[:, :full * chunk].reshape(B, full, chunk).sum(-1, **kw)
    if full < cores:   # the last core's partial chunk
        out = torch.cat([out, x[:, full * chunk:].sum(-1, keepdim=True, **kw)], 1)
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


def _ssa(p: Process, pg: ProcessGraph) -> dict:
    """Per-head shapes of a Spikformer SSA form (``processes.ssa_dims``)."""
    y, s = (pg.processes[o] for o in p.operands)
    return ssa_dims(p.attrs["form"], p.attrs["heads"], y.out_shape, s.out_shape)


def _back_ssa(p: Process, pg: ProcessGraph, m: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """``out[h] = L[h] @ R[h]``: ``L[r, k]`` feeds out row ``r``, ``R[k, c]`` feeds out column ``c``."""
    dims, heads = _ssa(p, pg), p.attrs["heads"]
    (r, k), (_, c) = dims["left"], dims["right"]
    mo = m.view(heads, r, c)
    lo, lt, ro, rt = SSA_FORMS[p.attrs["form"]]
    left = mo.sum(2, keepdim=True).expand(heads, r, k)     # selected outputs per row, for every L[r, k]
    right = mo.sum(1, keepdim=True).expand(heads, k, c)    # per column, for every R[k, c]
    side = {lo: left.transpose(1, 2) if lt else left, ro: right.transpose(1, 2) if rt else right}
    return [(p.operands[0], side["dyn"].flatten()), (p.operands[1], side["spk"].flatten())]


def _back_dsmm(p: Process, pg: ProcessGraph, m: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    if p.attrs["form"] in SSA_FORMS:
        return _back_ssa(p, pg, m)
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

def _bounds(n: int, chunk: int, cores: int, plane: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Core boundaries ``min(c * chunk, n)`` for ``c = 0..cores`` as (flat index, row of planes, offset in plane)."""
    f = torch.clamp(torch.arange(cores + 1) * chunk, max=n)
    return f, f // plane, f % plane


class ConvOps:
    """Ops per conv output: stored synapses whose input is non-zero.

    ``__call__`` gives every output's count (a reference, and for small layers);
    :meth:`per_core` gives the per-core sums directly without forming them. Both are
    linear in the non-zero mask, so per-core sums are differences of one cumulative sum
    over the flat outputs ``(oc, y, x)`` taken at the core boundaries: whole channels
    before the boundary's channel (the stored mask times per-tap input totals, a matmul as
    small as the weights), plus a partial channel (a window count over the group's summed
    input minus the taps whose mantissa is zero, or the stored taps when most are zero,
    summed over the positions before the boundary from running sums along the input rows).
    """

    def __init__(self, p: Process, chunk: int | None = None, cores: int | None = None):
        w = np.asarray(p.params["weight"])
        a = p.attrs
        self.cout, self.cin_g, self.kh, self.kw = w.shape
        self.groups = a["groups"]
        self.stride, self.pad, self.dil = a["stride"], a["padding"], a["dilation"]
        self.oh, self.ow = p.out_shape[1:]
        zeros = int((w == 0).sum())
        self.box = zeros <= w.size - zeros
        self.entries = np.argwhere(w == 0) if self.box else np.argwhere(w != 0)
        taps = defaultdict(list)
        cout_g = self.cout // self.groups
        for oc, ci, ky, kx in self.entries:
            taps[(int(ky), int(kx))].append((int(oc), int(oc) // cout_g * self.cin_g + int(ci)))
        self.taps = {k: (torch.tensor([e[0] for e in v]), torch.tensor([e[1] for e in v])) for k, v in taps.items()}
        # [G, cout_g, cin_g * kh * kw]: stored synapses per output channel, by input channel and tap
        self.stored = torch.from_numpy(w != 0).float().reshape(self.groups, cout_g, -1)
        if chunk is not None:
            self._plan_cores(chunk, cores)

    def _plan_cores(self, chunk: int, cores: int) -> None:
        """Boundary tables for :meth:`per_core`: which (boundary, entry) pairs need a partial row."""
        plane = self.oh * self.ow
        self.f, self.oc_b, q = _bounds(self.cout * plane, chunk, cores, plane)
        part = torch.nonzero(q > 0).flatten()          # boundaries inside a channel
        self.part, self.part_oc, self.part_q = part, self.oc_b[part], q[part]
        self.part_g = self.part_oc // (self.cout // self.groups)
        oy, ox = self.part_q // self.ow, self.part_q % self.ow
        # pairs (partial boundary, entry of its channel): an entry adds its full rows above the
        # boundary (from row sums) and its row up to the boundary (from running sums along the input row)
        ent = torch.from_numpy(self.entries.astype(np.int64)).reshape(-1, 4)
        by_oc = defaultdict(list)
        for i, oc in enumerate(ent[:, 0].tolist()):
            by_oc[oc].append(i)
        pb, pe = [], []
        for j, oc in enumerate(self.part_oc.tolist()):
            for i in by_oc.get(oc, ()):
                pb.append(j)
                pe.append(i)
        pb, pe = torch.tensor(pb, dtype=torch.int64), torch.tensor(pe, dtype=torch.int64)
        e = ent[pe]
        cout_g = self.cout // self.groups
        self.pair_b, self.pair_ci, self.pair_ky, self.pair_kx = pb, e[:, 0] // cout_g * self.cin_g + e[:, 1], e[:, 2], e[:, 3]
        self.pair_oy, self.pair_ox = oy[pb], ox[pb]
        self._rows_at: dict[tuple[int, int], tuple] = {}

    def _row_index(self, H: int, W: int) -> tuple:
        """Where the running sums along the input rows are read, for an input of ``H x W`` (cached).

        The running sums are taken separately over each column phase ``r`` of the stride (input
        columns ``r, r + sw, ...``) and laid side by side, phase ``r`` from offset ``off[r]``.
        Tap column ``kx`` reads input columns ``kx dw - pw + ox sw``: phase ``(kx dw - pw) mod sw``,
        from position ``m0 = floor((kx dw - pw) / sw)``; the sum over ``ox < j`` is the running
        sum at ``m0 + j`` minus that at ``m0``, both clamped into the row (outside is padding).
        Returns the index at ``j = ow`` and at ``j = 0`` per ``kx`` (whole output rows), the same
        for every pair at its boundary column, and each pair's input row with a 0/1 validity.
        """
        key = (H, W)
        if key not in self._rows_at:
            (sh, sw), (dh, dw), (ph, pw) = self.stride, self.dil, self.pad
            lengths = np.array([len(range(r, W, sw)) for r in range(sw)])
            off = np.concatenate([[0], np.cumsum(lengths)])

            def at(r, m):   # inclusive running sums: the sum over positions < m sits at m - 1 (m = 0: none)
                return np.maximum(off[r] + m - 1, 0).astype(np.int64), (m > 0).astype(np.float32)

            def idx(kx, j):
                base = kx * dw - pw
                r, m0 = base % sw, (base - base % sw) // sw
                return at(r, np.clip(m0 + j, 0, lengths[r])), at(r, np.clip(m0, 0, lengths[r]))

            kxs = np.arange(self.kw)
            hi, lo = idx(kxs, self.ow)
            p_hi, p_lo = idx(self.pair_kx.numpy(), self.pair_ox.numpy())
            y = (self.pair_oy * sh + self.pair_ky * dh - ph).numpy()
            valid = torch.from_numpy(((y >= 0) & (y < H)).astype(np.float32))
            # (index, 0/1 weight): a sum over no position reads any entry and weighs it 0
            t = lambda a: tuple(torch.from_numpy(np.asarray(v)) for v in a)   # noqa: E731
            self._rows_at[key] = (t(hi), t(lo), t(p_hi), t(p_lo), torch.from_numpy(np.clip(y, 0, H - 1)), valid)
        return self._rows_at[key]

    def _tap(self, xp: torch.Tensor, ky: int, kx: int) -> torch.Tensor:
        (sh, sw), (dh, dw) = self.stride, self.dil
        y0, x0 = ky * dh, kx * dw
        return xp[:, :, y0:y0 + sh * (self.oh - 1) + 1:sh, x0:x0 + sw * (self.ow - 1) + 1:sw]

    def _window(self, nz: torch.Tensor) -> torch.Tensor:
        """Window counts over each group's summed input, as if every tap were stored: ``[B, G, oh, ow]``."""
        B = nz.shape[0]
        ph, pw = self.pad
        s = nz.view(B, self.groups, self.cin_g, *nz.shape[-2:]).sum(2)
        if self.dil == (1, 1):   # zero-padded window sums in one kernel
            return F.avg_pool2d(s, (self.kh, self.kw), self.stride, self.pad, divisor_override=1)
        s = F.pad(s, (pw, pw, ph, ph))
        return sum(self._tap(s, ky, kx) for ky in range(self.kh) for kx in range(self.kw))

    def __call__(self, nz: torch.Tensor) -> torch.Tensor:
        B = nz.shape[0]
        ph, pw = self.pad
        if self.box:   # channel sums first: the window count works on G planes, not C
            out = self._window(nz).repeat_interleave(self.cout // self.groups, dim=1)
            sign = -1
        else:
            out = torch.zeros(B, self.cout, self.oh, self.ow)
            sign = 1
        xp = F.pad(nz, (pw, pw, ph, ph)) if self.taps else None
        for (ky, kx), (oc, ci) in self.taps.items():
            out.index_add_(1, oc, self._tap(xp, ky, kx)[:, ci], alpha=sign)
        return out.flatten(1)

    def per_core(self, nz: torch.Tensor) -> torch.Tensor:
        """Ops per core ``[B, cores]`` (float64) of the outputs' consecutive chunks (needs ``_plan_cores``)."""
        B, C, H, W = nz.shape
        (sh, sw), (dh, dw), (ph, pw) = self.stride, self.dil, self.pad
        (hi, hi_ok), (lo, lo_ok), (p_hi, p_hi_ok), (p_lo, p_lo_ok), p_y, p_valid = self._row_index(H, W)
        # inclusive running sums along every input row, per column phase of the stride, side by side
        # (float32 exact: at most W per row)
        run = torch.cumsum(nz, -1) if sw == 1 else torch.cat([torch.cumsum(nz[..., r::sw], -1) for r in range(sw)], -1)
        # cols[b, c, y, kx]: input row y under the taps of column offset kx, over all output columns
        cols = run.index_select(-1, hi) * hi_ok - run.index_select(-1, lo) * lo_ok
        cols = F.pad(cols, (0, 0, ph, ph))                                              # [B, C, Hp, kw]
        # rows[b, c, ky, oy, kx]: input under tap (ky, kx) summed over output row oy
        rows = torch.stack([cols[:, :, ky * dh:ky * dh + sh * (self.oh - 1) + 1:sh]
                            for ky in range(self.kh)], 2)                                # [B, C, kh, oh, kw]
        per_tap = rows.sum(3).view(B, self.groups, -1)                                  # [B, G, cin_g*kh*kw]
        # whole channels: stored mask @ per-tap totals (float32 exact: <= fan-in * oh * ow < 2**24)
        tot = torch.einsum("gok,bgk->bgo", self.stored, per_tap).reshape(B, self.cout).double()
        before = F.pad(torch.cumsum(tot, 1), (1, 0))                                    # [B, cout + 1]
        cum = before[:, self.oc_b]                                                      # [B, cores + 1]
        if len(self.part):
            partial = torch.zeros(B, len(self.part), dtype=torch.float64)
            if self.box:
                plane = F.pad(torch.cumsum(self._window(nz).flatten(2).double(), 2), (1, 0))
                partial += plane[:, self.part_g, self.part_q]
            if len(self.pair_b):
                # an entry's rows above the boundary, then its row up to the boundary's column
                above = F.pad(torch.cumsum(rows, 3), (0, 0, 1, 0))[:, self.pair_ci, self.pair_ky, self.pair_oy,
                                                                   self.pair_kx]
                row = (run[:, self.pair_ci, p_y, p_hi] * p_hi_ok - run[:, self.pair_ci, p_y, p_lo] * p_lo_ok) * p_valid
                ent = (above + row).double()
                # (index_add_ with alpha=-1 takes a slow path: negate the source instead)
                partial.index_add_(1, self.pair_b, ent.neg_() if self.box else ent)
            cum[:, self.part] += partial
        return cum[:, 1:] - cum[:, :-1]


class DenseOps:
    """Ops per dense output: stored weights whose input is non-zero."""

    def __init__(self, p: Process, chunk: int, cores: int):
        self.mask = torch.from_numpy(np.asarray(p.params["weight"]) != 0).float()
        self.chunk, self.cores = chunk, cores

    def __call__(self, nz: torch.Tensor) -> torch.Tensor:
        return nz.flatten(1) @ self.mask.T

    def per_core(self, nz: torch.Tensor) -> torch.Tensor:
        """Ops per core ``[B, cores]`` (float64): the per-output ops summed over each core's chunk."""
        return segsum(self(nz), self.chunk, self.cores).double()


class MatmulOps:
    """Ops per dual-spike-matmul output: spikes in its column (each adds one operand entry to it).

    Spikformer SSA forms: ``out[h] = L @ R``; spikes in ``R[:, c]`` (or ``L[r, :]`` when the
    spike operand is on the left) each add one entry to ``out[r, c]``."""

    def __init__(self, p: Process, pg: ProcessGraph, chunk: int, cores: int):
        self.chunk, self.cores = chunk, cores
        self.ssa = _ssa(p, pg) if p.attrs["form"] in SSA_FORMS else None
        if self.ssa is not None:
            self.heads, (_, lt, _, rt) = p.attrs["heads"], SSA_FORMS[p.attrs["form"]]
            self.spk_t = lt if self.ssa["spk_side"] == "left" else rt
            return
        self.heads, self.d, self.n, self.hw = _dsmm_dims(p, pg)
        self.y1 = p.attrs["form"] == "y1T@s"
        rows = self.n if self.y1 else self.d
        f, hr, self.p_b = _bounds(self.heads * rows * self.hw, chunk, cores, self.hw)
        self.h_b, self.r_b = hr // rows, (hr % rows).double()

    def _ssa_ops(self, nz: torch.Tensor) -> torch.Tensor:
        B, (r, k), (_, c) = nz.shape[0], self.ssa["left"], self.ssa["right"]
        if self.ssa["spk_side"] == "left":   # L [r, k]: spikes per row
            spk = nz.reshape(B, self.heads, *((k, r) if self.spk_t else (r, k)))
            rows = spk.sum(2 if self.spk_t else 3)
            return rows.unsqueeze(3).expand(B, self.heads, r, c).reshape(B, -1)
        spk = nz.reshape(B, self.heads, *((c, k) if self.spk_t else (k, c)))
        cols = spk.sum(3 if self.spk_t else 2)   # R [k, c]: spikes per column
        return cols.unsqueeze(2).expand(B, self.heads, r, c).reshape(B, -1)

    def __call__(self, nz: torch.Tensor) -> torch.Tensor:
        if self.ssa is not None:
            return self._ssa_ops(nz)
        B = nz.shape[0]
        k, rows = (self.d, self.n) if self.y1 else (self.n, self.d)
        col = nz.reshape(B, self.heads, k, self.hw).sum(2, keepdim=True)
        return col.expand(B, self.heads, rows, self.hw).reshape(B, -1)

    def per_core(self, nz: torch.Tensor) -> torch.Tensor:
        """Ops per core ``[B, cores]`` (float64): differences of the cumulative ops at the core boundaries.

        Output ``(h, r, p)`` (flat ``(h * rows + r) * hw + p``) gets ``col[h, p]``, the spikes in
        column ``p``; the cumulative sum up to it is ``rows * (columns' totals of heads < h)
        + r * (head h's total) + (head h's columns < p)``.
        """
        if self.ssa is not None:   # Spikformer forms: per-output ops summed per core (small maps)
            return segsum(self._ssa_ops(nz), self.chunk, self.cores).double()
        B = nz.shape[0]
        k, rows = (self.d, self.n) if self.y1 else (self.n, self.d)
        col = nz.reshape(B, self.heads, k, self.hw).sum(2).double()               # [B, heads, hw]
        tot = col.sum(2)
        heads_before = F.pad(torch.cumsum(tot, 1), (1, 0)) * rows              # [B, heads + 1]
        cols_before = F.pad(torch.cumsum(col, 2), (1, 0))                      # [B, heads, hw + 1]
        h, r, p = self.h_b, self.r_b, self.p_b
        hc = h.clamp(max=self.heads - 1)   # the end boundary (h = heads) has r = p = 0
        cum = heads_before[:, h] + r * tot[:, hc] + cols_before[:, hc, p]
        return cum[:, 1:] - cum[:, :-1]


# -- the plan ---------------------------------------------------------------------------------------

def _split(table: torch.Tensor) -> torch.Tensor:
    """A per-core message table ``[cores, chunk, 4]`` as ``[cores, parts, chunk / parts, 4]`` in float32.

    A part's per-step sum is at most its rows' total (every element sending), so float32 sums
    (exact below 2**24) serve when every part's total is below it: the fewest parts (a divisor
    of ``chunk``) that achieve this; float64 in one part when no divisor does.
    """
    cores, chunk, _ = table.shape
    for parts in (d for d in range(1, chunk + 1) if chunk % d == 0):
        split = table.view(cores, parts, chunk // parts, 4)
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

    def __init__(self, pg: ProcessGraph, mapping: Mapping):
        self.pg, self.mapping = pg, mapping
        self.groups, self.placement = mapping.groups, mapping.placement
        # cores in use (groups may share one in a hand-made mapping; map_graph never does)
        self.ncores = max((g.first_core + g.cores for g in self.groups.values()), default=0)
        self.syn: dict[str, SynTable] = {}
        # sender -> [cores, parts, chunk / parts, 4] (float32 when exact, see _split) or host [n, 4]
        self.send: dict[str, torch.Tensor] = {}
        self.upstream: dict[str, set[str]] = defaultdict(set)
        self._conn: dict[str, torch.Tensor] = {}
        # embedded-processor processes that run at every step (MA gates): a stage of the pipeline
        self.step_host = {p.name for p in pg if p.kind in HOST_KINDS and not p.static}
        for p in pg:
            if p.kind in ("synapse", "dsmm"):
                self.syn[p.name] = self._table(p)
        for g in self.groups.values():
            self._group(g)
        # embedded-processor work at every step (MA gates): its fixed op counts, and its inputs,
        # which every sending core delivers to the embedded processor (one message per non-zero value)
        self.host_ops: dict[str, dict[str, int]] = {}
        for p in pg:
            if p.kind in HOST_KINDS:
                self.host_ops[p.name] = gate_ops(p)
                if not p.static:
                    for s in p.sources:
                        sender = self._sender(s)
                        self._to_host(sender)
                        if sender in self.groups or sender in self.step_host:
                            self.upstream[p.name].add(sender)
        for name, acc in self._conn.items():
            g = self.home_group(name)
            if g is not None:
                acc = _split(F.pad(acc, (0, 0, 0, g.cores * g.chunk - acc.shape[0])).view(g.cores, g.chunk, 4))
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
        ins = p.operands[1:] if p.kind == "dsmm" else p.sources
        spikes_in = len(ins) == 1 and self.pg.processes[ins[0]].kind in ("neuron", "gate")
        kind = "mac" if p.kind == "synapse" and p.attrs.get("graded_input", False) else "ac"
        if p.kind == "dsmm":
            if p.attrs["form"] in SSA_FORMS:
                dense = numel(p.out_shape) * _ssa(p, self.pg)["k"]
            else:
                heads, d, n, hw = _dsmm_dims(p, self.pg)
                dense = numel(p.out_shape) * (d if p.attrs["form"] == "y1T@s" else n)
        else:
            dense = numel(p.out_shape) * numel(p.params["weight"].shape[1:])
        if group == "host":
            fan = back(p, self.pg, torch.ones(numel(p.out_shape)))[-1][1].double()
            return SynTable(p.name, None, kind, None, fan, dense, p.kind == "dsmm", spikes_in)
        if numel(p.out_shape) != self.groups[group].size:
            raise NotImplementedError(f"{p.name!r}: co-located with {group!r} but not element for element")
        g = self.groups[group]
        ops = (MatmulOps(p, self.pg, g.chunk, g.cores) if p.kind == "dsmm" else
               ConvOps(p, g.chunk, g.cores) if p.attrs["op"] == "conv" else DenseOps(p, g.chunk, g.cores))
        return SynTable(p.name, group, kind, ops, None, dense, p.kind == "dsmm", spikes_in)

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
                if h in self.step_host:
                    self.upstream[g.name].add(h)
                elif home is not None:
                    self.upstream[g.name].add(home.name)
                self._connect(h, g.first_core + c, torch.nonzero(cnt > 0).flatten())

    def _to_host(self, sender: str) -> None:
        """Every element of group ``sender`` is delivered to the embedded processor (no mesh hops modelled)."""
        if sender not in self.groups:
            return   # already on the embedded processor
        acc = self._conn.setdefault(sender, torch.zeros(numel(self.pg.processes[sender].out_shape), 4,
                                                        dtype=torch.float64))
        acc[:, 1] += 1

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
            self.compartments[sl] += segsum(torch.ones(1, g.size, dtype=torch.float64), g.chunk, g.cores)[0]
            self.core_group[sl] = [g.name] * g.cores

    @property
    def depth(self) -> int:
        """Extra chip steps of the pipelined schedule: the largest group delay."""
        return int(self.core_delay.max(initial=0))
