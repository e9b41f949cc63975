"""Messages on the mesh's links, for the detailed timing model: which links each message crosses.

A message from core ``a`` to core ``b`` travels by dimension-order routing (east-west first, then
north-south) over the system's grid of tiles (:meth:`hw_sim.mapping.Mapping.core_xy`); each step is
one directed link: a mesh hop inside a chip, a chip-to-chip link where it crosses a chip boundary.
Links are numbered ``(y * width + x) * 4 + direction`` (0 east, 1 west, 2 south, 3 north) from the
tile the message leaves. :class:`LinkTable` holds, for one sender, a sparse ``[links, elements]``
matrix (how often element ``i``'s messages cross each link, one per destination core) and every
element's longest path latency, so that per step the load of every link is one sparse product
with the sender's non-zero mask.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .chips import EnergyProfile
from .mapping import Mapping

EAST, WEST, SOUTH, NORTH = range(4)


class MeshLinks:
    """The directed links of a mapping's tile grid and the path of any (source, destination) pair."""

    def __init__(self, mapping: Mapping, ncores: int):
        self.mapping = mapping
        xs, ys = mapping.core_xy(np.arange(max(ncores, 1)))
        self.width, self.height = int(xs.max()) + 1, int(ys.max()) + 1
        self.size = self.width * self.height * 4
        chip = mapping.chip
        per_tile = chip.get("cores_per_tile", 1)
        self.cols = chip["mesh_cols"]
        self.rows = math.ceil(math.ceil(chip["cores_per_chip"] / per_tile) / self.cols)   # tile rows a chip
        self._paths: dict[tuple[int, int], np.ndarray] = {}
        self._kinds = None

    def kinds(self) -> np.ndarray:
        """Per link: 0 east-west hop, 1 north-south hop, 2 chip-to-chip link (crosses a chip boundary)."""
        if self._kinds is not None:
            return self._kinds
        ids = np.arange(self.size)
        tile, d = np.divmod(ids, 4)
        y, x = np.divmod(tile, self.width)
        nx = x + np.where(d == EAST, 1, np.where(d == WEST, -1, 0))
        ny = y + np.where(d == SOUTH, 1, np.where(d == NORTH, -1, 0))
        crosses = (nx // self.cols != x // self.cols) | (ny // self.rows != y // self.rows)
        self._kinds = np.where(crosses, 2, np.where(d < 2, 0, 1))
        return self._kinds

    def path(self, a: int, b: int) -> np.ndarray:
        """Link ids a message from core ``a`` to core ``b`` crosses, in order."""
        key = (a, b)
        hit = self._paths.get(key)
        if hit is None:
            (ax, ay), (bx, by) = (tuple(int(v) for v in self.mapping.core_xy(np.asarray(c))) for c in (a, b))
            links = []
            step = 1 if bx >= ax else -1
            for x in range(ax, bx, step):
                links.append((ay * self.width + x) * 4 + (EAST if step > 0 else WEST))
            step = 1 if by >= ay else -1
            for y in range(ay, by, step):
                links.append((y * self.width + bx) * 4 + (SOUTH if step > 0 else NORTH))
            hit = self._paths[key] = np.asarray(links, dtype=np.int64)
        return hit

    def link_ns(self, profile: EnergyProfile) -> torch.Tensor:
        """Time one message holds each link, ``[links]`` in ns (its hop or chip-link latency)."""
        price = np.array([profile.hop_ew_ns, profile.hop_ns_ns, profile.chip_link_ns])
        return torch.from_numpy(price[self.kinds()])


class LinkTable:
    """One sender's messages on the links: ``load`` sparse ``[links, elements]`` (how often each element's
    messages cross each link) and ``longest`` ``[elements, 3]`` (the links of the element's longest path,
    the one with most links, by kind: east-west, north-south, chip link)."""

    def __init__(self, mesh: MeshLinks, src_core: np.ndarray, edges: list[tuple[np.ndarray, int]], n: int):
        rows, cols, kinds = [], [], mesh.kinds()
        self.longest = np.zeros((n, 3), dtype=np.float64)
        self._lat = None   # [elements] ns of the longest path, once the link latencies are known
        for idx, dst in edges:
            for a in np.unique(src_core[idx]):
                elems = idx[src_core[idx] == a]
                path = mesh.path(int(a), int(dst))
                if not len(path):
                    continue
                rows.append(np.repeat(path[None], len(elems), 0).ravel())
                cols.append(np.repeat(elems, len(path)))
                by_kind = np.bincount(kinds[path], minlength=3).astype(np.float64)
                self.longest[elems] = np.where(by_kind.sum() > self.longest[elems].sum(1, keepdims=True),
                                               by_kind, self.longest[elems])
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        self.load = torch.sparse_coo_tensor(torch.from_numpy(np.stack([r, c])), torch.ones(len(r), dtype=torch.float64),
                                            (mesh.size, n), check_invariants=True).coalesce()

    def step(self, nz: torch.Tensor, link_kind_ns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample of ``nz [B, n]`` (non-zero mask): messages per link ``[B, links]``, and the
        latency (ns) of the longest path any of its messages takes ``[B]`` (``link_kind_ns``: ns per
        link of each kind, east-west, north-south, chip link)."""
        loads = torch.sparse.mm(self.load, nz.double().T).T
        if self._lat is None:
            self._lat = torch.from_numpy(self.longest) @ link_kind_ns
        lat = self._lat
        return loads, (nz.double() * lat).max(1).values if nz.shape[1] else torch.zeros(nz.shape[0])


def add_links(counts, d: int, lt: LinkTable, nz: torch.Tensor, S: int, link_kind_ns: torch.Tensor) -> None:
    """Add one sender's messages on the mesh links into ``counts.links[d]`` (its delay ``d``): the loads of
    ``nz [S * B, n]`` (non-zero mask over ``S`` steps) and the longest path of each step."""
    loads, path = lt.step(nz, link_kind_ns)
    T, B = counts.core["ac"].shape[:2]
    if d not in counts.links:
        counts.links[d] = (torch.zeros(T, B, loads.shape[-1], dtype=torch.float64),
                           torch.zeros(T, B, dtype=torch.float64))
    ld, pt = counts.links[d]
    ld[:S] += loads.view(S, B, -1)
    pt[:S] = torch.maximum(pt[:S], path.view(S, B))
