"""A mapping that needs more chips than the largest system built of the chip is refused before its
fan-out is counted (that count takes minutes on Ti's ~250,000 cores); --max-chips overrides it."""

from __future__ import annotations

import tomllib
from dataclasses import replace

import pytest

from exporters.loihi.export import lowered_graph
from hw_sim.chips import load_chip
from hw_sim.mapping import MappingError, map_graph
from testutil import ROOT, write_toy_nir


@pytest.fixture(scope="module")
def toy_graph(tmp_path_factory):
    src = write_toy_nir(tmp_path_factory.mktemp("sys") / "toy.nir")
    return lowered_graph(str(src), "digits", None, calib_images=8, eval_images=4).pg


def test_the_profiles_state_the_largest_systems():
    # Intel's largest systems: Pohoiki Springs (768 Loihi, 2020) and Hala Point (1,152 Loihi 2, 2024)
    for name, n in (("loihi1", 768), ("loihi2", 1152), ("loihi2-opmem", 1152)):
        with open(ROOT / "hw_sim" / "profiles" / f"{name}.toml", "rb") as f:
            assert tomllib.load(f)["chip"]["max_system_chips"] == n
        assert load_chip(name).max_system_chips == n


def test_more_chips_than_any_system_is_refused(toy_graph):
    free = map_graph(toy_graph, replace(load_chip("loihi2"), cores_per_chip=1, mesh_cols=1, max_system_chips=0))
    assert free.chips == free.cores >= 2   # one core per chip: as many chips as cores
    small = replace(load_chip("loihi2"), cores_per_chip=1, mesh_cols=1, max_system_chips=free.chips - 1)
    with pytest.raises(MappingError, match=rf"needs {free.chips} loihi2 chips .* largest loihi2 system holds "
                                           rf"{free.chips - 1}"):
        map_graph(toy_graph, small)
    # an explicit --max-chips is the user's system: it replaces the chip file's limit
    assert map_graph(toy_graph, small, max_chips=free.chips).chips == free.chips
    with pytest.raises(MappingError, match="--max-chips is 1"):
        map_graph(toy_graph, small, max_chips=1)
