"""Fan-out per core: how many distinct cores each core of a group sends its values to.

Counted from the real connectivity (:func:`hw_sim.reach.back`, which pushes a mask of
outputs back to the inputs holding a stored synapse, operand entry or window into them:
borders, strides and groups exact): every destination core's compartments are pushed back
through the processes placed on it, and each sending core it reaches counts it once.
Values on the embedded processor send no mesh messages and are not counted.
"""

from __future__ import annotations

import numpy as np
import torch

from .processes import ProcessGraph
from .prodneuron import ProdGeometry
from .reach import back


def fan_out_per_core(pg: ProcessGraph, groups: dict, placement: dict[str, str]) -> dict[str, np.ndarray]:
    """Group name -> distinct destination cores of each of its cores (``[cores]`` integers)."""
    fan = {name: np.zeros(g.cores, dtype=np.int64) for name, g in groups.items()}
    prods = {name: ProdGeometry(pg.processes[name], pg) for name in groups if pg.processes[name].kind == "prodmm"}
    for r in groups.values():
        if r.name in prods:   # product compartments: the distinct operand elements of each core's terms
            _prod_receiver(prods[r.name], r, groups, placement, fan)
            continue
        members = [p for p in reversed(list(pg)) if placement.get(p.name) == r.name]
        for core in range(r.cores):
            masks = {r.name: torch.zeros(r.size)}
            masks[r.name][core * r.chunk:(core + 1) * r.chunk] = 1.0
            reached: dict[str, torch.Tensor] = {}   # sending group -> elements of it read here
            for p in members:
                m = masks.pop(p.name, None)
                if m is None:
                    continue
                for src, cnt in back(p, pg, m):
                    home = placement.get(src)
                    inside = home == r.name and src != r.name
                    key, table = (src, masks) if inside else (home, reached)
                    if not inside and key not in groups:
                        continue   # the embedded processor
                    table[key] = table[key] + cnt if key in table else cnt
            for sender, cnt in reached.items():
                s = groups[sender]
                idx = torch.nonzero(cnt > 0).flatten().numpy()
                # a prodmm's value is its outputs' terms: the P cores holding them send here
                cores = prods[sender].p_cores_of_outputs(idx, s.chunk) if sender in prods else np.unique(idx // s.chunk)
                fan[sender][cores] += 1
    return fan


def _prod_receiver(geo: ProdGeometry, r, groups: dict, placement: dict[str, str], fan: dict) -> None:
    """Fan-out into the cores of a prodmm's product compartments (operand elements: flat through flattens)."""
    for core in range(r.cores):
        senders: dict[str, list[np.ndarray]] = {}
        for operand, idx in geo.operand_elements(core * r.chunk, min((core + 1) * r.chunk, r.size)):
            home = placement.get(operand)
            if home in groups:   # not the embedded processor
                senders.setdefault(home, []).append(idx)
        for sender, parts in senders.items():
            fan[sender][np.unique(np.concatenate(parts) // groups[sender].chunk)] += 1
