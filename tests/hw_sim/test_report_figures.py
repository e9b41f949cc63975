"""The report page's core map and pipeline phases against hand-worked positions (no simulation)."""

import pytest

from hw_sim.chips import load_energy_profile
from hw_sim.counters import CORE_KEYS
from hw_sim.mapping import Mapping
from hw_sim.report_figures import CORE_TRACE, core_map, phases

# a made-up system: 8 cores a chip in tiles of 2, a mesh 2 tiles wide (so 2 rows), chips 2 to a row
CHIP = {"name": "toy", "cores_per_chip": 8, "mesh_cols": 2, "cores_per_tile": 2, "system_cols": 2,
        "memory_words": 100}


def summary(cores: list[int], chips: int) -> dict:
    per_core = [{"core": c, "group": "g", "delay_steps": 0, "utilisation": 0.5, "busy_ns": 10.0 * (c + 1),
                 **{k: 0.0 for k in CORE_KEYS}} for c in cores]
    return {"per_core": per_core, "T": 2, "chips": chips, "critical_core": {"core": cores[-1]}}


def test_core_map_places_cores_on_their_tiles_and_chips():
    # cores 0, 1 share tile 0 of chip 0 (left and right half of the tile's cell); core 3 is the right half
    # of tile 1 (x 1); core 5 is tile 2 (x 0, y 1); core 9 is chip 1's tile 0: x 2 (the second chip of the row)
    cores = [0, 1, 3, 5, 9]
    fig = core_map(summary(cores, chips=2), Mapping(chip=CHIP, groups={}, host=[]), load_energy_profile("loihi2"))
    used = fig.data[CORE_TRACE]
    want = [(-0.25, 0.0), (0.25, 0.0), (1.25, 0.0), (0.25, 1.0), (2.25, 0.0)]   # +-0.25: the slot in the tile
    assert [(float(x), float(y)) for x, y in zip(used.x, used.y, strict=True)] == want   # exact binary fractions
    assert len(fig.data[0].x) == 16                                  # every slot of both chips, free ones grey
    assert len(fig.layout.shapes) == 2                               # one outline per chip
    assert list(used.marker.color) == pytest.approx([10.0 * (c + 1) / 2 for c in cores])   # busy per data step
    assert (float(fig.data[2].x[0]), float(fig.data[2].y[0])) == (2.25, 0.0)   # the critical core
    labels = [b.label for b in fig.layout.updatemenus[0].buttons]
    assert labels == ["busy", "utilisation", "energy", "sops", "msgs", "memory"]


def test_pipeline_phases():
    # T = 4 data steps, depth 1: step 0 fills (the deeper group has no data), step 4 drains
    assert [(label, span) for label, span, _ in phases(4, 1)] == [("fill", (0, 1)), ("fill and drain", (4, 1)),
                                                                  ("drain", (4, 5))]
    # depth 5 > T 2: steps 2 to 4 both fill and drain, 5 and 6 only drain
    assert [span for _, span, _ in phases(2, 5)] == [(0, 2), (2, 5), (5, 7)]
