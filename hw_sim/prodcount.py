"""Per-step event counts of a ``prodmm`` (product compartments, :mod:`hw_sim.prodneuron`) from its operands.

Per step, per sample, with ``L`` / ``R`` the non-zero masks of the product's two operand views
(``P[h, i, j, l]`` reads ``L[h, i, j]`` and ``R[h, j, l]``):

- on the ``P`` cores: synaptic ops of the two weight-1 input synapses, one per delivered
  non-zero input (``sum L`` over the compartments: ``mac`` when the operand is graded, ``ac``
  when binary; ``sum R`` likewise), compartment updates (active: at least one input
  non-zero, ``L + R - L R``; the rest idle), and one message per non-zero product to each
  reader of the value (in-tile or with its mesh hops to the reader's core);
- on the reader's cores: one synaptic op per non-zero product arriving (``(L @ R)[h, i, l]``
  into ``out[h, i, l]``: ``mac`` when the product is graded, ``ac`` when both operands are
  binary), also counted in ``dsmm`` (the gated accumulations of products, as for a ``dsmm``:
  there every spike adds its column; here only the non-zero products arrive).

Per-core sums of the first three are differences of prefix sums
(:meth:`hw_sim.prodneuron.ProdGeometry.per_core`). The route of a ``P`` message (in-tile or
not, mesh hops, chip links) depends on its ``P`` core and its reader core only, and both are
constant over long runs of terms: the terms are cut into segments, each inside one output row
``(h, i)``'s run of ``c`` terms for one ``j``, one ``P`` core and one reader core
(:meth:`ProdCount._segments`, once). A segment's non-zero terms are ``L[h, i, j]`` times a
difference of ``R[h, j, :]``'s running sum, so no per-term table or mask is built (Ti at 224
has 285 M terms; the detailed timing model's link tables still read the terms' mask).
"""

from __future__ import annotations

import numpy as np
import torch

from .links import add_links
from .mapping import ROUTE, add_routes
from .op_kernels import numel, segsum
from .prodneuron import ProdGeometry


def _spiking(pg, name: str) -> bool:
    """Whether value ``name`` is binary spikes, through flattens and pass-through sums."""
    p = pg.processes[name]
    while p.kind == "flatten" or (p.kind == "sum" and p.attrs.alias):
        p = pg.processes[p.sources[0]]
    return p.spiking


class ProdCount:
    """Counting of one ``prodmm`` ``p`` under ``mapping``: its ``P`` group and the groups reading it."""

    def __init__(self, p, pg, mapping, readers: list[str]):
        self.p, self.geo = p, ProdGeometry(p, pg)
        self.group = mapping.groups[p.name]
        self.mapping = mapping
        spikes = {o: _spiking(pg, o) for o in p.operands}
        self.kind = {side: "ac" if spikes[self.geo.operand_of(side)] else "mac" for side in ("left", "right")}
        self.product_kind = "ac" if all(spikes.values()) else "mac"
        self.readers = [mapping.groups[r] for r in readers]
        for r in self.readers:
            if r.size != numel(p.out_shape):
                raise NotImplementedError(f"{p.name!r}: read by {r.name!r} but not element for element")
        self._table = None
        self.link_tables: list = []   # detailed timing: one hw_sim.links.LinkTable per reader (set by the plan)
        self.delay, self.link_kind_ns = 0, None

    def route_links(self, mesh, delay: int, link_kind_ns: torch.Tensor) -> None:
        """Route every term's message to each reader over the mesh's links (the detailed timing model)."""
        from .links import LinkTable

        g, n = self.group, np.arange(self.geo.size)
        src, dest = g.first_core + n // g.chunk, self.geo.dest_of_terms().numpy()
        self.delay, self.link_kind_ns = delay, link_kind_ns
        for r in self.readers:
            dst = r.first_core + dest // r.chunk
            edges = [(np.nonzero(dst == c)[0], int(c)) for c in np.unique(dst)]
            self.link_tables.append(LinkTable(mesh, src, edges, self.geo.size))

    def _segments(self) -> list[tuple[torch.Tensor, ...]]:
        """Per reader: the terms cut where the row ``q = (h, i, j)``, the ``P`` core or the reader core
        changes, as ``(q, l0, l1, P core within the group, route [segments, len(ROUTE)])``: segment
        ``[q*c + l0, q*c + l1)`` of the flat terms (cached; a few per row and core)."""
        if self._table is None:
            geo, g = self.geo, self.group
            rows, c, k = geo.heads * geo.r * geo.k, geo.c, geo.k
            self._table = []
            for r in self.readers:
                # an output index o*c + col (o = h*r + i) that starts a reader core starts, in every j,
                # the term (o*k + j)*c + col
                starts = np.arange(0, geo.heads * geo.r * c, r.chunk, dtype=np.int64)
                o, col = np.divmod(starts, c)
                cuts = ((o * k)[:, None] + np.arange(k)[None, :]) * c + col[:, None]
                t0 = np.unique(np.concatenate([np.arange(rows, dtype=np.int64) * c, cuts.ravel(),
                                               np.arange(0, geo.size, g.chunk, dtype=np.int64)]))
                t1 = np.append(t0[1:], geo.size)
                q, l0 = np.divmod(t0, c)
                src, dst = t0 // g.chunk, r.first_core + ((q // k) * c + l0) // r.chunk
                route = torch.from_numpy(self.mapping.route(g.first_core + src, dst))
                self._table.append(tuple(torch.from_numpy(a) for a in (q, l0, l0 + t1 - t0, src)) + (route,))
        return self._table

    def _hops(self, L: torch.Tensor, R: torch.Tensor) -> list[torch.Tensor]:
        """Per reader, ``[B, P cores, len(ROUTE)]``: the routes of the non-zero terms' messages (masks
        ``L [B, h, r, k]``, ``R [B, h, k, c]``), summed per ``P`` core (exact: integer counts)."""
        geo = self.geo
        B = L.shape[0]
        Lf = L.reshape(B, -1)                                                      # [B, h*r*k] by q
        rpre = torch.nn.functional.pad(torch.cumsum(R, 3), (1, 0)).reshape(B, -1)  # [B, h*k*(c+1)]
        out = []
        for q, l0, l1, src, route in self._segments():
            hj = (q // (geo.r * geo.k)) * geo.k + q % geo.k                         # R's row (h, j)
            n = Lf[:, q] * (rpre[:, hj * (geo.c + 1) + l1] - rpre[:, hj * (geo.c + 1) + l0])
            per = torch.zeros(B, self.group.cores, len(ROUTE), dtype=torch.float64)
            out.append(per.index_add_(1, src, n.unsqueeze(2) * route.unsqueeze(0)))
        return out

    def count(self, counts, dyn: torch.Tensor, spk: torch.Tensor) -> None:
        """Add one run's events (operands ``[S, B, ...]``, one of them possibly computed once) to ``counts``."""
        S = max(dyn.shape[0], spk.shape[0])
        B = spk.shape[1]
        vals = {self.p.operands[0]: dyn, self.p.operands[1]: spk}
        geo, g = self.geo, self.group
        L, R = ((geo.view(side, vals[geo.operand_of(side)].expand(S, *vals[geo.operand_of(side)].shape[1:])
                          .flatten(0, 1)) != 0).double() for side in ("left", "right"))
        prods = geo.per_core(L, R, g.chunk)
        l_ops, r_ops = geo.per_core(L, torch.ones_like(R), g.chunk), geo.per_core(torch.ones_like(L), R, g.chunk)
        cc, sl = counts.core, slice(g.first_core, g.first_core + g.cores)
        shape = (S, B, g.cores)
        cc[self.kind["left"]][:S, :, sl] += l_ops.view(shape)
        cc[self.kind["right"]][:S, :, sl] += r_ops.view(shape)
        active = (l_ops + r_ops - prods).view(shape)
        cc["active"][:S, :, sl] += active
        per_core = np.diff(np.minimum(np.arange(g.cores + 1) * g.chunk, g.size))   # compartments of each core
        cc["idle"][:S, :, sl] += torch.from_numpy(per_core) - active
        per_out = torch.einsum("bhrk,bhkc->bhrc", L, R).reshape(S * B, -1)
        reader_ops = 0.0
        for r in self.readers:
            ops = segsum(per_out, r.chunk, r.cores).view(S, B, -1)
            rs = slice(r.first_core, r.first_core + r.cores)
            cc[self.product_kind][:S, :, rs] += ops
            cc["msgs_in"][:S, :, rs] += ops   # each non-zero term's graded spike is received by the reader
            cc["dsmm"][:S, :, rs] += ops
            reader_ops += float(ops.sum())
        for per in self._hops(L, R):
            add_routes(cc, (slice(None, S), slice(None), sl), per.view(*shape, len(ROUTE)))
        if self.link_tables:
            nz = (L.unsqueeze(4) * R.unsqueeze(2)).reshape(S * B, -1)   # [SB, h*r*k*c]: the non-zero terms
            for lt in self.link_tables:
                add_links(counts, self.delay, lt, nz, S, self.link_kind_ns)
        layer = counts.layers.setdefault(self.p.name, {"ac": 0.0, "mac": 0.0, "nonzero": 0.0, "elements": 0,
                                                       "dense_macs": 0, "kind": self.product_kind})
        for side, ops in (("left", l_ops), ("right", r_ops)):
            layer[self.kind[side]] += float(ops.sum())
        layer[self.product_kind] += reader_ops
        spk_mask = spk != 0
        layer["nonzero"] += float(spk_mask.expand(S, *spk.shape[1:]).sum())
        layer["elements"] += S * spk[0].numel()
        layer["dense_macs"] += numel(self.p.out_shape) * geo.k * S * B
