"""Who receives a sender's messages: its (destination core, run of its elements) table.

One row per run ``[start, end)`` of the sender's flat elements that one core reads
(:mod:`hw_sim.reach_runs`). It answers the two questions the counters ask, in time and
memory that grow with the runs, not with (core, element) pairs (Ti at 224 has hundreds of
millions of those, and a pair table took minutes and gigabytes to build):

- per step, the messages each core receives: with ``P`` the running sum of the sender's
  non-zero mask, a run brings ``P[end] - P[start]`` (:meth:`RunTable.received`);
- once, per element, its messages' routes (deliveries in and out of its tile, mesh hops,
  chip links), summed over the cores whose runs hold it: a difference array over the runs
  cut at the sending cores' boundaries (:meth:`RunTable.routes`).

A run listed twice (two connections of one core) counts twice, as the messages do.
"""

from __future__ import annotations

import numpy as np
import torch

from .reach_runs import EMPTY, split

#: runs a batch of :meth:`RunTable.received` gathers at once (bounds its temporary ``[B, runs]``)
RUNS_PER_PASS = 1 << 20


class RunTable:
    """``core[i]`` reads elements ``start[i] .. end[i] - 1`` of one sender of ``n`` elements."""

    def __init__(self, items: list[tuple[int, np.ndarray]], n: int, ncores: int):
        """``items``: ``(core, runs [k, 2])`` per connection; ``core`` one core, or one per run."""
        runs = np.concatenate([r for _, r in items]) if items else EMPTY
        self.core = np.concatenate([np.broadcast_to(np.asarray(c, dtype=np.int64), len(r)) for c, r in items]
                                   ) if items else np.zeros(0, dtype=np.int64)
        self.start, self.end = runs[:, 0].copy(), runs[:, 1].copy()
        self.n, self.ncores = n, ncores
        self._t = tuple(torch.from_numpy(a) for a in (self.core, self.start, self.end))   # (shares the arrays)

    def received(self, nz: torch.Tensor) -> torch.Tensor:
        """Messages each core receives from non-zero mask ``nz [B, n]``: ``[B, ncores]`` float64 (exact)."""
        core, start, end = self._t
        B = nz.shape[0]
        P = torch.zeros(B, self.n + 1, dtype=torch.float64)
        torch.cumsum(nz.double(), 1, out=P[:, 1:])
        out = torch.zeros(B, self.ncores, dtype=torch.float64)
        for i in range(0, len(core), RUNS_PER_PASS):
            sl = slice(i, i + RUNS_PER_PASS)
            out.index_add_(1, core[sl], P[:, end[sl]] - P[:, start[sl]])
        return out

    def routes(self, route, group, columns: int) -> np.ndarray:
        """Per element ``[n, columns]``: the sum, over the cores that read it, of ``route(src, dst)``
        (``columns`` arrays over the messages; ``src`` the element's core in its sending ``group``, a
        :class:`hw_sim.mapping.Group`; None: the embedded processor)."""
        d = np.zeros((self.n + 1, columns))
        if len(self.core):
            if group is None:   # the embedded processor: one delivery a message, no mesh position
                start, end = self.start, self.end
                cols = [np.zeros(len(start))] * columns
                cols[1] = np.ones(len(start))
            else:   # every quantity depends on the element through its sending core only
                start, end, src, dst = self._pieces(group.chunk)
                cols = route(group.first_core + src, dst)
            for j, col in enumerate(cols):
                col = col.astype(np.float64)   # exact: integer counts far below 2**53
                d[:, j] = np.bincount(start, col, self.n + 1) - np.bincount(end, col, self.n + 1)
        return np.cumsum(d, 0)[:self.n]

    def _pieces(self, chunk: int) -> tuple[np.ndarray, ...]:
        """The runs cut where the sending core changes (every ``chunk`` elements), in no set order:
        start, end, sending core (within its group) and reading core of each piece. Most runs lie in one
        sending core; only the others are cut (at Ti's size 1.7 M of 8.4 M runs)."""
        k0, k1 = self.start // chunk, (self.end - 1) // chunk
        one = k0 == k1
        if one.all():
            return self.start, self.end, k0, self.core
        many = ~one
        pieces, which = split(np.stack([self.start[many], self.end[many]], 1), chunk)
        cat = np.concatenate
        return (cat([self.start[one], pieces[:, 0]]), cat([self.end[one], pieces[:, 1]]),
                cat([k0[one], pieces[:, 0] // chunk]), cat([self.core[one], self.core[many][which]]))

    def edges(self) -> list[tuple[np.ndarray, int]]:
        """``(elements, core)`` per row (the link tables' input; small mappings only)."""
        return [(np.arange(s, e), int(c)) for c, s, e in zip(self.core, self.start, self.end, strict=True)]
