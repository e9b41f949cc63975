"""The latency objective and the system topology, against hand-worked numbers.

Times use the ``loihi1`` energy profile (Davies et al. 2018, Table 1): 3.5 ns a synaptic op, 8.4 ns
an active neuron update, a 113 ns barrier; the chip is loihi2 told to price with it (``LOIHI2``).
"""

import dataclasses

import numpy as np
import pytest
from test_mapping_counts import dense_graph

from hw_sim.chips import load_chip
from hw_sim.mapping import Mapping, MappingError, map_graph

LOIHI2 = dataclasses.replace(load_chip("loihi2"), energy_profile="loihi1")   # Table 1's round numbers


def test_latency_splits_the_slowest_core_while_it_improves():
    # dense 8 -> 6, two non-zeros per neuron. "cores": one core of 6 neurons: 12 synapses * 3.5
    # + 6 * 8.4 = 92.4 ns, + 113 barrier. "latency" halves the chunk: 3 (46.2 ns), 2 (30.8), 1
    # (2 * 3.5 + 8.4 = 15.4 ns, 6 cores), where it cannot split further.
    chip = LOIHI2
    cores = map_graph(dense_graph(), chip)
    assert (cores.cores, cores.objective, cores.step_ns) == (1, "cores", pytest.approx(92.4 + 113))
    fast = map_graph(dense_graph(), chip, objective="latency")
    assert (fast.cores, fast.groups["n"].chunk, fast.step_ns) == (6, 1, pytest.approx(15.4 + 113))


def test_latency_stays_within_the_chip_budget():
    # 3 cores a chip, --max-chips 1: chunks 6 -> 3 (2 cores) -> 2 (3 cores); 1 would need 6 cores
    chip = dataclasses.replace(LOIHI2, cores_per_chip=3, mesh_cols=3)
    m = map_graph(dense_graph(), chip, max_chips=1, objective="latency")
    assert (m.cores, m.chips, m.step_ns) == (3, 1, pytest.approx(30.8 + 113))
    with pytest.raises(MappingError, match="unknown mapping objective 'fast'"):
        map_graph(dense_graph(), chip, objective="fast")


def test_chips_on_a_grid_hops_and_crossings():
    # 4 cores a chip in a 2-wide mesh (2 rows), chips on a grid 2 wide: chip 0 (0, 0), 1 (1, 0), 2 (0, 1), 3 (1, 1)
    chip = {**dataclasses.asdict(load_chip("loihi2")), "cores_per_chip": 4, "mesh_cols": 2, "system_cols": 2}
    m = Mapping(chip, {}, [])
    # core 5: chip 1, local core 1 -> mesh (1*2 + 1, 0) = (3, 0); core 9: chip 2, local 1 -> (1, 2 + 0);
    # core 14: chip 3, local 2 -> (2 + 0, 2 + 1)
    x, y = m.core_xy(np.array([0, 5, 9, 14]))
    assert (x.tolist(), y.tolist()) == ([0, 3, 1, 2], [0, 0, 2, 3])
    # on-chip hops leave out the steps that cross a chip boundary (those are chip links):
    # 0 (0, 0) -> 9 (1, 2): 1 east, 2 south of which 1 crosses chip 0 -> chip 2: 1 hop each way;
    # 5 (3, 0) -> 14 (2, 3): 1 west, 3 south of which 1 crosses chip 1 -> chip 3: 1 and 2 hops
    ew, ns = m.hops(np.array([0, 5]), np.array([9, 14]))
    assert (ew.tolist(), ns.tolist()) == ([1, 1], [1, 2])
    # chip-to-chip links crossed: 0 -> 9 is chip 0 -> 2 (one row down): 1; 0 -> 14: chip 0 -> 3: 2; same chip: 0
    assert m.chip_crossings(np.array([0, 0, 1]), np.array([9, 14, 3])).tolist() == [1, 2, 0]
    # route rows: (in tile, other tile, EW, NS, chip links); core 0 -> 0 stays in its tile
    assert m.route(np.array([0, 0, 5]), np.array([0, 9, 14])).tolist() == [
        [1, 0, 0, 0, 0], [0, 1, 1, 1, 1], [0, 1, 1, 2, 1]]
    with pytest.raises(MappingError, match="system_cols"):
        Mapping({**chip, "system_cols": 0}, {}, [])


def test_tiles_of_several_cores():
    # Loihi 1's mesh: 4 cores a tile, 8 tiles a row (SANA-FE loihi.yaml): core 5 is tile 1 at (1, 0),
    # core 37 tile 9 at (1, 1); cores 4..7 share tile 1, so 4 -> 7 crosses no link
    m = Mapping(dataclasses.asdict(load_chip("loihi1")), {}, [])
    x, y = m.core_xy(np.array([0, 5, 37, 127]))
    assert (x.tolist(), y.tolist()) == ([0, 1, 1, 7], [0, 0, 1, 3])
    assert m.route(np.array([4, 4]), np.array([7, 37])).tolist() == [[1, 0, 0, 0, 0], [0, 1, 0, 1, 0]]
