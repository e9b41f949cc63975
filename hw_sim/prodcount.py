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
(:meth:`hw_sim.prodneuron.ProdGeometry.per_core`); the mesh hops of the ``P`` messages depend
on both the ``P`` core and the reader core of every term, so they are summed over the
terms' non-zero mask (``h*r*k*c`` per step: fine for the models simulated on a CPU; the
mapping never builds it).
"""

from __future__ import annotations

import numpy as np
import torch

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

    def _hop_table(self) -> torch.Tensor:
        """``[readers, P, len(ROUTE)]``: per term, the route of its message (:meth:`Mapping.route`)."""
        if self._table is None:
            g, n = self.group, torch.arange(self.geo.size)
            src = (g.first_core + n // g.chunk).numpy()
            dest = self.geo.dest_of_terms()
            rows = [torch.from_numpy(self.mapping.route(src, (r.first_core + dest // r.chunk).numpy()))
                    for r in self.readers]
            self._table = (torch.stack(rows) if rows
                           else torch.zeros(0, self.geo.size, len(ROUTE), dtype=torch.float64))
        return self._table

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
        if self.readers:
            nz = (L.unsqueeze(4) * R.unsqueeze(2)).reshape(S * B, -1)   # [SB, h*r*k*c]: the non-zero terms
            for table in self._hop_table():
                per = torch.stack([segsum(nz * table[:, i], g.chunk, g.cores).view(shape)
                                   for i in range(len(ROUTE))], -1)
                add_routes(cc, (slice(None, S), slice(None), sl), per)
        layer = counts.layers.setdefault(self.p.name, {"ac": 0.0, "mac": 0.0, "nonzero": 0.0, "elements": 0,
                                                       "dense_macs": 0, "kind": self.product_kind})
        for side, ops in (("left", l_ops), ("right", r_ops)):
            layer[self.kind[side]] += float(ops.sum())
        layer[self.product_kind] += reader_ops
        spk_mask = spk != 0
        layer["nonzero"] += float(spk_mask.expand(S, *spk.shape[1:]).sum())
        layer["elements"] += S * spk[0].numel()
        layer["dense_macs"] += numel(self.p.out_shape) * geo.k * S * B
