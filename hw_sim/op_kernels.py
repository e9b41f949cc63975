"""Synaptic op kernels: how many synaptic ops each output (and each core) receives from an input mask.

For every synapse and dual-spike matmul, a function from the non-zero mask of its input
to the ops each of its outputs receives (:class:`ConvOps`, :class:`DenseOps`,
:class:`MatmulOps`), and ``per_core``: the same ops summed over each core's consecutive
chunk of outputs, computed directly. Ops are done where the weights live, i.e. at the core
holding the output. :mod:`hw_sim.connectivity` builds one kernel per synaptic process.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hw_sim.processes import Process, ProcessGraph
from hw_sim.products import FormDims, form_dims


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


def product_dims(p: Process, pg: ProcessGraph) -> FormDims:
    """Per-head shapes of dual-spike matmul ``p`` in ``pg`` (``hw_sim.products.form_dims``)."""
    y, s = (pg.processes[o] for o in p.operands)
    return form_dims(p.attrs.form, p.attrs.heads, y.out_shape, s.out_shape)


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
        self.groups = a.groups
        self.stride, self.pad, self.dil = a.stride, a.padding, a.dilation
        self.oh, self.ow = p.out_shape[1:]
        zeros = int((w == 0).sum())
        self.box = zeros <= w.size - zeros
        self.entries = np.argwhere(w == 0) if self.box else np.argwhere(w != 0)
        cout_g = self.cout // self.groups
        # per tap (ky, kx), in order of first appearance: its entries' output and (global) input channels
        e = self.entries.astype(np.int64).reshape(-1, 4)
        key = e[:, 2] * self.kw + e[:, 3]
        order = np.argsort(key, kind="stable")   # (stable: each tap's entries stay in argwhere order)
        keys, first, count = np.unique(key, return_index=True, return_counts=True)
        ends = np.cumsum(count)
        oc, ci = e[order, 0], e[order, 0] // cout_g * self.cin_g + e[order, 1]
        self.taps = {(int(keys[t]) // self.kw, int(keys[t]) % self.kw):
                     (torch.from_numpy(oc[ends[t] - count[t]:ends[t]].copy()),
                      torch.from_numpy(ci[ends[t] - count[t]:ends[t]].copy()))
                     for t in np.argsort(first, kind="stable")}
        # [G, cout_g, cin_g * kh * kw]: stored synapses per output channel, by input channel and tap
        self.stored = torch.from_numpy(w != 0).float().reshape(self.groups, cout_g, -1)
        if chunk is not None:
            self._plan_cores(chunk, cores)

    def _plan_cores(self, chunk: int, cores: int) -> None:
        """Boundary tables for :meth:`per_core`: which (boundary, entry) pairs need a partial row."""
        plane = self.oh * self.ow
        _, self.oc_b, q = _bounds(self.cout * plane, chunk, cores, plane)
        part = torch.nonzero(q > 0).flatten()          # boundaries inside a channel
        self.part, self.part_oc, self.part_q = part, self.oc_b[part], q[part]
        self.part_g = self.part_oc // (self.cout // self.groups)
        oy, ox = self.part_q // self.ow, self.part_q % self.ow
        # pairs (partial boundary, entry of its channel): an entry adds its full rows above the
        # boundary (from row sums) and its row up to the boundary (from running sums along the input row)
        ent = torch.from_numpy(self.entries.astype(np.int64)).reshape(-1, 4)
        # argwhere lists the entries by output channel: channel oc's are entries lo[oc] .. lo[oc] + n[oc] - 1
        n = torch.bincount(ent[:, 0], minlength=self.cout)
        lo = torch.cumsum(n, 0) - n
        k = n[self.part_oc]
        pb = torch.repeat_interleave(torch.arange(len(part)), k)
        pe = torch.repeat_interleave(lo[self.part_oc], k) + torch.arange(int(k.sum())) \
            - torch.repeat_interleave(torch.cumsum(k, 0) - k, k)
        e = ent[pe]
        cout_g = self.cout // self.groups
        self.pair_b, self.pair_ky, self.pair_kx = pb, e[:, 2], e[:, 3]
        self.pair_ci = e[:, 0] // cout_g * self.cin_g + e[:, 1]   # the entry's input channel
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
        (sh, sw), dh, ph = self.stride, self.dil[0], self.pad[0]   # column offsets are in _row_index
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
    """Ops per dual-spike-matmul output: the spikes that gate it (each adds one operand entry to it).

    Every form is ``out[h] = L @ R`` (``hw_sim.products``); spikes in ``R[:, c]`` (or ``L[r, :]``
    when the spike operand is on the left) each add one entry to ``out[r, c]``."""

    def __init__(self, p: Process, pg: ProcessGraph, chunk: int, cores: int):
        self.chunk, self.cores = chunk, cores
        self.dims = product_dims(p, pg)
        self.heads = p.attrs.heads
        self.left = self.dims.form.spk_side == "left"
        r, c = self.dims.out
        if not self.left:   # core boundaries as (head, row, column) of the flat outputs (h * r + row) * c + col
            _, hr, self.p_b = _bounds(self.heads * r * c, chunk, cores, c)
            self.h_b, self.r_b = hr // r, (hr % r).double()

    def _spikes(self, nz: torch.Tensor) -> torch.Tensor:
        """Spikes per row of ``L`` ``[B, heads, r]`` (spikes on the left) or per column of ``R`` ``[B, heads, c]``."""
        B, f = nz.shape[0], self.dims.form
        spk = nz.reshape(B, self.heads, *self.dims.spk_view)
        # L = spk (or spk^T): a row of L is a row (column) of spk; R = spk (or spk^T): a column of R
        # is a column (row) of spk
        if self.left:
            return spk.sum(2 if f.spk_transposed else 3)
        return spk.sum(3 if f.spk_transposed else 2)

    def __call__(self, nz: torch.Tensor) -> torch.Tensor:
        B, (r, c) = nz.shape[0], self.dims.out
        per = self._spikes(nz)
        per = per.unsqueeze(3) if self.left else per.unsqueeze(2)
        return per.expand(B, self.heads, r, c).reshape(B, -1)

    def per_core(self, nz: torch.Tensor) -> torch.Tensor:
        """Ops per core ``[B, cores]`` (float64): differences of the cumulative ops at the core boundaries.

        Spikes on the right: output ``(h, r, p)`` (flat ``(h * rows + r) * cols + p``) gets ``col[h, p]``,
        the spikes in column ``p``; the cumulative sum up to it is ``rows * (columns' totals of heads < h)
        + r * (head h's total) + (head h's columns < p)``. Spikes on the left (small maps): the
        per-output ops summed per core.
        """
        if self.left:
            return segsum(self(nz), self.chunk, self.cores).double()
        rows = self.dims.out[0]
        col = self._spikes(nz).double()                                        # [B, heads, cols]
        tot = col.sum(2)
        heads_before = F.pad(torch.cumsum(tot, 1), (1, 0)) * rows              # [B, heads + 1]
        cols_before = F.pad(torch.cumsum(col, 2), (1, 0))                      # [B, heads, cols + 1]
        h, r, p = self.h_b, self.r_b, self.p_b
        hc = h.clamp(max=self.heads - 1)   # the end boundary (h = heads) has r = p = 0
        cum = heads_before[:, h] + r * tot[:, hc] + cols_before[:, hc, p]
        return cum[:, 1:] - cum[:, :-1]
