"""Which inputs reach a core's outputs, as runs of consecutive flat indices: the set-up's fast path.

:mod:`hw_sim.reach` pushes a full-size mask back through one process. A core holds a consecutive
chunk of its group's outputs, so what it reads is a few boxes of each source (channels x rows x
columns of a convolution's window, rows or columns of a product's operand): here a selection is a
sorted array of disjoint half-open runs ``[start, end)`` over the flat output (``int64 [n, 2]``),
and each kind pushes it back on a crop that holds the selection only, never a full-size mask.

Only which inputs reach is kept (every connectivity here is non-negative, so the support of a
pushed-back count is the push-back of the support). ``tests/hw_sim/test_reach_runs.py`` checks
every kind against :func:`hw_sim.reach.back` on the full-size mask.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.functional import conv2d

from .op_kernels import product_dims
from .processes import Process, ProcessGraph

EMPTY = np.zeros((0, 2), dtype=np.int64)
#: kinds whose reach is the same map at every core when each process's index is stacked over the cores
#: (``c * size + i``): the elementwise kinds, and the products (the cores as further heads)
ELEMENTWISE = ("neuron", "sum", "flatten", "attngate", "gate")
STACKED = ELEMENTWISE + ("input", "dsmm", "prodmm")


# -- runs -------------------------------------------------------------------------------------------

def merged(runs: np.ndarray) -> np.ndarray:
    """``runs`` (any order, may overlap or touch) as sorted, disjoint, non-touching runs."""
    runs = runs[runs[:, 1] > runs[:, 0]]
    if len(runs) < 2:
        return runs.astype(np.int64, copy=False)
    if (runs[1:, 0] < runs[:-1, 0]).any():   # (most callers build them in order: no sort then)
        runs = runs[np.argsort(runs[:, 0], kind="stable")]
    reach = np.maximum.accumulate(runs[:, 1])
    new = np.concatenate([[True], runs[1:, 0] > reach[:-1]])   # a gap before it: a run of its own
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:], [len(runs)]]) - 1
    return np.stack([runs[first, 0], reach[last]], 1).astype(np.int64)


def from_mask(mask: np.ndarray, offset: int = 0) -> np.ndarray:
    """The runs of the true entries of 1-D boolean ``mask``, shifted by ``offset``."""
    d = np.diff(np.concatenate([[False], mask, [False]]).view(np.int8))
    return np.stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1)], 1).astype(np.int64) + offset


def from_rows(mask: np.ndarray, row_starts: np.ndarray) -> np.ndarray:
    """Runs of a 2-D boolean ``mask [rows, L]`` whose row ``i`` starts at flat index ``row_starts[i]``."""
    rows, L = mask.shape
    if rows > 1 and (mask[1:] == mask[0]).all():   # every channel reached alike (a dense kernel): one row's runs
        return merged((row_starts[:, None, None] + from_mask(mask[0])[None]).reshape(-1, 2))
    whole = mask.all(1)   # a convolution's window usually reaches every input of its band: one run
    part = np.flatnonzero(~whole & mask.any(1))
    out = [np.stack([row_starts[whole], row_starts[whole] + L], 1)]
    if len(part):
        pad = np.zeros((len(part), L + 2), dtype=np.int8)
        pad[:, 1:-1] = mask[part]
        d = np.diff(pad, axis=1).ravel()
        at = np.flatnonzero(d)   # row-major: the k-th end closes the k-th start
        r, c = np.divmod(at, L + 1)
        up = d[at] == 1
        out.append(np.stack([row_starts[part[r[up]]] + c[up], row_starts[part[r[~up]]] + c[~up]], 1))
    return merged(np.concatenate(out))


def to_mask(runs: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask over ``n`` flat elements with ``runs`` set."""
    d = np.zeros(n + 1, dtype=np.int64)
    np.add.at(d, runs[:, 0], 1)
    np.add.at(d, runs[:, 1], -1)
    return np.cumsum(d[:n]) > 0


# -- per kind ---------------------------------------------------------------------------------------

class Reach:
    """Runs-based push-back for one graph, with each process's stored-synapse pattern cached
    (a core's push-back reads it thousands of times at Ti's size)."""

    def __init__(self, pg: ProcessGraph):
        self.pg = pg
        self._nz: dict[tuple, torch.Tensor] = {}

    def back(self, p: Process, runs: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """``(source, runs of the source's flat output)`` that feed the outputs of ``p`` in ``runs``."""
        if not len(runs):
            return []
        k = p.kind
        if k in ELEMENTWISE:
            return [(s, runs) for s in p.sources]
        if k == "input":
            return []
        if k in ("synapse", "sumpool", "maxpool"):
            if k == "synapse" and p.attrs.op != "conv":
                reached = from_mask(self._weight(p)[_indices(runs)].any(0).numpy())
            else:
                reached = self._window(p, runs)
            return [(s, reached) for s in p.sources]
        if k in ("dsmm", "prodmm"):
            return self._product(p, runs)
        raise NotImplementedError(f"{p.name!r}: no runs push-back for kind {k!r} (hw_sim/reach.py has its mask form)")

    def _weight(self, p: Process, dtype=torch.bool) -> torch.Tensor:
        """Where ``p`` stores a synapse (its non-zero weights), as ``dtype``."""
        key = (p.name, dtype)
        w = self._nz.get(key)
        if w is None:
            w = self._nz[key] = torch.from_numpy(np.asarray(p.params["weight"]) != 0).to(dtype)
        return w

    def _window(self, p: Process, runs: np.ndarray) -> np.ndarray:
        """A convolution's or pool's inputs under the selected outputs: the transposed convolution of
        the selection's crop. Each group of a grouped convolution is an ungrouped one over its own
        channels, so the crop holds the selected channels only, never the rest of their group."""
        cout, oh, ow = p.out_shape
        groups = p.attrs.groups if p.kind == "synapse" else cout   # a pool: every channel its own window
        cout_g = cout // groups
        if cout_g == 1:   # one output channel a group (depthwise, pools): one crop, a group per channel
            return self._crop(p, runs, groups, 1)
        span = cout_g * oh * ow
        pieces, _ = split(runs, span)
        g = pieces[:, 0] // span
        cut = np.flatnonzero(np.diff(g)) + 1
        return merged(np.concatenate([self._crop(p, part, groups, cout_g) for part in np.split(pieces, cut)]))

    def _crop(self, p: Process, runs: np.ndarray, groups: int, cout_g: int) -> np.ndarray:
        """:meth:`_window` of ``runs`` that lie in one group of ``cout_g`` output channels (or, with
        ``cout_g`` 1, anywhere): the transposed convolution of a crop of the selected channels (and of their
        rows, when they lie in one channel), read back as runs of the input."""
        a = p.attrs
        cout, oh, ow = p.out_shape
        cin, ih, iw = self.pg.processes[p.sources[0]].out_shape
        if p.kind == "synapse":
            w, dil = self._weight(p, torch.float32), a.dilation
            kh, kw = w.shape[2:]
        else:
            w, dil = None, (1, 1)
            kh, kw = a.kernel
        cin_g, depthwise = cin // groups, cout_g == 1
        plane = oh * ow
        c0, c1 = int(runs[0, 0]) // plane, (int(runs[-1, 1]) - 1) // plane + 1
        y0, y1 = 0, oh
        if c1 - c0 == 1:   # one channel: its rows only
            y0 = (int(runs[0, 0]) - c0 * plane) // ow
            y1 = (int(runs[-1, 1]) - 1 - c0 * plane) // ow + 1
        crop = to_mask(runs - (c0 * plane + y0 * ow), (c1 - c0) * (y1 - y0) * ow).reshape(1, c1 - c0, y1 - y0, ow)
        wt = torch.ones(c1 - c0, 1, kh, kw) if w is None else w[c0:c1]
        t = transposed_conv(torch.from_numpy(crop).float(), wt, a.stride, dil, c1 - c0 if depthwise else 1)[0]
        # t[:, ty, tx] is input row y0 * stride - pad + ty, column tx - pad
        r_top, c_left = y0 * a.stride[0] - a.padding[0], -a.padding[1]
        ty0, tx0 = max(0, -r_top), max(0, -c_left)
        ty1, tx1 = min(t.shape[1], ih - r_top), min(t.shape[2], iw - c_left)
        if ty1 > ty0 and tx0 == -c_left and tx1 - tx0 == iw:   # the window spans every input column
            hit = t[:, ty0:ty1, tx0:tx1] > 0
        else:
            hit = torch.zeros(t.shape[0], max(ty1 - ty0, 0), iw, dtype=torch.bool)
            if ty1 > ty0 and tx1 > tx0:
                hit[:, :, c_left + tx0:c_left + tx1] = t[:, ty0:ty1, tx0:tx1] > 0
        ch0 = (c0 // cout_g) * cin_g   # the crop's first input channel: the first of c0's group
        starts = ((ch0 + np.arange(hit.shape[0])) * ih + r_top + ty0) * iw
        return from_rows(hit.reshape(hit.shape[0], -1).numpy(), starts)

    def _product(self, p: Process, runs: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """``out[h] = L[h] @ R[h]``: a selected output row needs its row of ``L``, a selected column its
        column of ``R``; each operand's entries as runs of its flat ``[heads, rows, cols]``."""
        dims = product_dims(p, self.pg)
        f = dims.form
        R, C = dims.out
        # selected (head, row) in h * R + r, and (head, column) in h * C + c
        rows = merged(np.stack([runs[:, 0] // C, (runs[:, 1] - 1) // C + 1], 1))
        cols = _columns(runs, R, C)
        out = []
        for name, role in zip(p.operands, ("dyn", "spk"), strict=True):
            side = "left" if f.left == role else "right"
            view, (r0, r1) = (dims.dyn_view, dims.dyn_rows) if role == "dyn" else (dims.spk_view, (0, dims.spk_view[0]))
            transposed = f.transpose_left if side == "left" else f.transpose_right
            sel, F = (rows, R) if side == "left" else (cols, C)
            out.append((name, _operand_runs(sel, F, view, r0, r1 - r0, f_major=(side == "left") != transposed)))
        return out


def transposed_conv(x: torch.Tensor, w: torch.Tensor, stride, dilation, groups: int) -> torch.Tensor:
    """``conv_transpose2d(x, w, stride=stride, dilation=dilation, groups=groups)`` (no padding), computed
    as the ``conv2d`` of ``x`` with zeros between its entries (``stride``) and the flipped kernel, padded
    by the kernel's reach: torch's CPU transposed convolution scatters columns back (col2im) and took
    5 to 10 times as long on the set-up's crops (few channels in, many out)."""
    B, cin, H, W = x.shape
    kh, kw = w.shape[2:]
    if tuple(stride) != (1, 1):
        sx = x.new_zeros(B, cin, (H - 1) * stride[0] + 1, (W - 1) * stride[1] + 1)
        sx[:, :, ::stride[0], ::stride[1]] = x
        x = sx
    per = cin // groups   # w: [cin, cout / groups, kh, kw] -> conv2d's [cout, cin / groups, kh, kw]
    wf = w.flip(2, 3).reshape(groups, per, -1, kh, kw).transpose(1, 2).reshape(-1, per, kh, kw)
    return conv2d(x, wf, padding=(dilation[0] * (kh - 1), dilation[1] * (kw - 1)), dilation=tuple(dilation),
                  groups=groups)


def _indices(runs: np.ndarray) -> np.ndarray:
    """The flat indices the runs hold, in order."""
    lens = runs[:, 1] - runs[:, 0]
    return np.repeat(runs[:, 0], lens) + local_index(lens)


def local_index(n: np.ndarray) -> np.ndarray:
    """``0 .. n[i] - 1`` for each ``i``, concatenated."""
    return np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)


def split(runs: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """``runs`` cut at every multiple of ``period``: the pieces, and the run each piece came from."""
    k0, k1 = runs[:, 0] // period, (runs[:, 1] - 1) // period
    n = k1 - k0 + 1
    k = np.repeat(k0, n) + local_index(n)
    s = np.maximum(np.repeat(runs[:, 0], n), k * period)
    e = np.minimum(np.repeat(runs[:, 1], n), (k + 1) * period)
    return np.stack([s, e], 1), np.repeat(np.arange(len(runs)), n)


def from_indices(idx: np.ndarray) -> np.ndarray:
    """The runs of sorted, distinct flat indices ``idx``."""
    idx = np.asarray(idx, dtype=np.int64)
    if not len(idx):
        return EMPTY
    cut = np.flatnonzero(np.diff(idx) != 1) + 1
    first = np.concatenate([[0], cut])
    last = np.concatenate([cut, [len(idx)]]) - 1
    return np.stack([idx[first], idx[last] + 1], 1)


def _columns(runs: np.ndarray, R: int, C: int) -> np.ndarray:
    """The (head, column) pairs ``h * C + c`` under runs of a flat ``[heads, R, C]`` output."""
    pieces, _ = split(runs, R * C)
    h = pieces[:, 0] // (R * C)
    s, e = pieces[:, 0] - h * R * C, pieces[:, 1] - h * R * C
    full = e - s >= C
    c0, c1 = s % C, (e - 1) % C + 1
    wrap = ~full & (c1 <= c0)   # from column c0 to the row's end, then from 0 to c1
    base = h * C
    parts = [np.stack([base[full], base[full] + C], 1),
             np.stack([base[~full & ~wrap] + c0[~full & ~wrap], base[~full & ~wrap] + c1[~full & ~wrap]], 1),
             np.stack([base[wrap] + c0[wrap], base[wrap] + C], 1), np.stack([base[wrap], base[wrap] + c1[wrap]], 1)]
    return merged(np.concatenate(parts))


def _operand_runs(sel: np.ndarray, F: int, view, r0: int, A: int, f_major: bool) -> np.ndarray:
    """Entries of an operand ``[heads, V0, V1]`` (rows ``r0 .. r0 + A`` used) that selected ``(head, f)``
    pairs (runs of ``h * F + f``) read: row ``r0 + f`` whole (``f_major``), or column ``f`` of every used row."""
    V0, V1 = view
    sel, _ = split(sel, F)
    h = sel[:, 0] // F
    f0, f1 = sel[:, 0] - h * F, sel[:, 1] - h * F
    if f_major:
        return merged(np.stack([(h * V0 + r0 + f0) * V1, (h * V0 + r0 + f1) * V1], 1))
    # the pieces' runs [piece, a] laid out in flat order, head by head: row a of a head before row
    # a + 1, and within a row its pieces in column order (each head's pieces are consecutive)
    first = np.searchsorted(h, h, side="left")     # the head's first piece
    size = np.searchsorted(h, h, side="right") - first
    a = np.arange(A)
    row = ((h * V0 + r0)[:, None] + a[None, :]) * V1
    at = (A * first)[:, None] + a[None, :] * size[:, None] + (np.arange(len(h)) - first)[:, None]
    out = np.empty((len(h) * A, 2), dtype=np.int64)
    out[at.ravel(), 0] = (row + f0[:, None]).ravel()
    out[at.ravel(), 1] = (row + f1[:, None]).ravel()
    return merged(out)
