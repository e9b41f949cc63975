"""Refuse a model that cannot fit the chip before any calibration: from the graph's shapes alone.

Calibrating Ti at 224 takes minutes and gigabytes; a model that needs more chips than the system
has should be told so first. The cores a mapping takes depend on the integers only through the
synapse memory (the stored weight width, the non-zero weights of a sparse encoding, the input
axons those bring); compartments, product compartments, dense rows and convolution taps depend on
the shapes alone. So the graph is lowered with placeholder value ranges (every range 1; the
lowering's structure does not depend on them) and every weight set to zero, the cheapest a
weight can be in every encoding (1 stored bit, no sparse entry, no axon of its own). The cores
that graph maps to are a lower bound on the calibrated model's (the mapping's cost is monotone
in each weight's width and non-zero-ness), so refusing on it never refuses a model that fits.
"""

from __future__ import annotations

import numpy as np

from hw_sim.chips import Chip, load_chip
from hw_sim.mapping import MappingError, map_graph
from sresformer.errors import UserError

from .flatgraph import FlatGraph
from .lower import lower


def fewest_cores(fg: FlatGraph, T: int, chip: Chip, input_static: bool = True) -> tuple[int, int]:
    """(cores, chips) at least needed by any calibration of ``fg`` on ``chip`` (no chip limit applied);
    ``(0, 0)`` when the placeholder lowering itself fails (the real lowering then says why)."""
    peaks = {name: 1.0 for name in fg.nodes}
    peaks["input"] = 1.0
    try:
        pg = lower(fg, peaks, T, chip, input_static=input_static, notes=[])
    except (UserError, ValueError, ZeroDivisionError, OverflowError):
        return 0, 0
    for p in pg:
        if "weight" in p.params:
            p.params["weight"] = np.zeros_like(np.asarray(p.params["weight"]))
    try:
        m = map_graph(pg, chip, max_chips=1 << 20, fan_out=False)
    except MappingError:   # a single compartment that cannot fit even with zero weights: the real mapping says it
        return 0, 0
    return m.cores, m.chips


def refuse_unfit(fg: FlatGraph, T: int, chip: Chip | str, max_chips: int | None, input_static: bool = True) -> None:
    """Raise ``MappingError`` in one line when even the lower bound of :func:`fewest_cores` exceeds
    ``max_chips`` (or, when that is ``None``, the chip file's ``max_system_chips``)."""
    if not isinstance(chip, Chip):
        chip = load_chip(chip)
    limit = max_chips if max_chips is not None else chip.max_system_chips or None
    if limit is None:
        return
    cores, chips = fewest_cores(fg, T, chip, input_static)
    if chips > limit:
        why = (f"--max-chips is {max_chips}" if max_chips is not None else
               f"the largest {chip.name} system holds {chip.max_system_chips} (the chip file's max_system_chips)")
        raise MappingError(f"the model needs at least {chips} {chip.name} chips ({cores} cores, from its shapes "
                           f"before calibration) but {why}")
