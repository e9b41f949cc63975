"""Chip and energy profiles: the built-ins carry the published numbers; bad files are refused."""

import pytest

from hw_sim.chips import ProfileError, available, load_chip, load_energy_profile


def test_builtin_names():
    assert available("chip") == ["loihi1", "loihi2", "loihi2-opmem"]
    assert available("energy") == ["loihi", "loihi1", "loihi2", "paper-45nm"]
    assert load_energy_profile("loihi") == load_energy_profile("loihi1")   # the alias


def test_published_numbers():
    paper = load_energy_profile("paper-45nm")
    assert (paper.ac_pj, paper.mac_pj) == (0.9, 4.6)
    loihi = load_energy_profile("loihi")
    assert (loihi.ac_pj, loihi.synop_ns, loihi.neuron_active_pj, loihi.neuron_idle_pj) == (23.6, 3.5, 81.0, 52.0)
    assert (loihi.spike_in_tile_pj, loihi.hop_ew_pj, loihi.hop_ns_pj) == (1.7, 3.0, 4.0)
    assert loihi.barrier_ns == 113.0
    assert load_chip("loihi1").neurons_per_core == 1024
    assert load_chip().cores_per_chip == 128
    assert (load_chip().memory_words, load_chip("loihi1").graded_spike_bits) == (12000, 0)


@pytest.mark.parametrize("chip", ["loihi1", "loihi2"])
def test_each_chip_names_an_energy_profile_that_loads(chip):
    assert load_energy_profile(load_chip(chip).energy_profile).name == chip


def test_user_file(tmp_path):
    text = (tmp_path / "x.toml")
    src = load_energy_profile("paper-45nm")
    import dataclasses
    body = "\n".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}"
                     for k, v in dataclasses.asdict(src).items() if v is not None and v != ())
    text.write_text("[energy]\n" + body.replace("'", '"').replace("0.9", "1.5"))
    assert load_energy_profile(str(text)).ac_pj == 1.5


@pytest.mark.parametrize("content,match", [
    ("[energy]\nname = 'x'\n", "missing keys"),
    ("not toml = = =", "not a valid"),
    ("[chip]\nname='c'\n", "not a valid"),
])
def test_bad_files(tmp_path, content, match):
    p = tmp_path / "bad.toml"
    p.write_text(content)
    with pytest.raises(ProfileError, match=match):
        load_energy_profile(str(p))


def test_unknown_name():
    with pytest.raises(ProfileError, match="built-in"):
        load_chip("truenorth")


# -- validation: a Chip / EnergyProfile with a bad field cannot exist ------------------------------

def _tiny_graph():
    import numpy as np

    from hw_sim.processes import Process, ProcessGraph

    p = [Process("input", "input", [], (1, 4, 4), attrs={"bits": 8}, static=True),
         Process("n", "neuron", ["input"], (1, 4, 4), params={"vth": np.array([1])},
                 attrs={"dv": 0, "du": 4096, "state_bits": 24, "decay_bits": 12})]
    return ProcessGraph({q.name: q for q in p}, "n", T=2, input_shape=(1, 4, 4))


@pytest.mark.parametrize("field,value", [
    ("neurons_per_core", 1.5), ("mesh_cols", 0), ("cores_per_chip", 0), ("cores_per_chip", True),
    ("weight_bits", 65), ("state_bits", 64), ("max_fan_in", -1), ("memory_words", "1000"),
    ("mesh_cols", 129), ("name", "two\nlines"), ("cuba_state_words", -1), ("system_cols", 0),
    ("energy_profile", "a\tb"),
])
def test_chip_in_code_is_checked(field, value):
    import dataclasses

    with pytest.raises(ProfileError, match=field):
        dataclasses.replace(load_chip("loihi2"), **{field: value})


@pytest.mark.parametrize("field,value", [
    ("ac_pj", float("inf")), ("ac_pj", float("nan")), ("ac_pj", True), ("mac_pj", -0.1), ("synop_ns", 1e12),
])
def test_energy_profile_in_code_is_checked(field, value):
    import dataclasses

    with pytest.raises(ProfileError, match=field):
        dataclasses.replace(load_energy_profile("loihi"), **{field: value})


def test_mapper_never_loops_or_divides_by_zero():
    from hw_sim.mapping import Mapping, MappingError, map_graph

    pg = _tiny_graph()
    assert map_graph(pg, load_chip("loihi2")).cores == 1
    for field, value in [("neurons_per_core", 1.5), ("mesh_cols", 0), ("cores_per_chip", 0)]:
        chip = load_chip("loihi2")
        object.__setattr__(chip, field, value)   # bypasses __post_init__: map_graph checks again
        with pytest.raises(ProfileError, match=field):
            map_graph(pg, chip)
    good = map_graph(pg, load_chip("loihi2"))
    for field in ("cores_per_chip", "mesh_cols"):   # a chip dict read back from an artifact
        with pytest.raises(MappingError, match=field):
            Mapping({**good.chip, field: 0}, good.groups, good.host, good.placement)


def test_every_field_has_a_unit_in_code_and_in_the_files():
    from pathlib import Path

    from hw_sim.chips import PROFILE_DIR, Chip, EnergyProfile, describe

    units = {"pJ", "ns", "W", "bits", "count", "words", "text", "flag", "exponent"}
    for cls in (Chip, EnergyProfile):
        for f in describe(cls):
            assert f["unit"] in units and f["doc"], f
    for path in Path(PROFILE_DIR).glob("*.toml"):
        for line in path.read_text().splitlines():
            key = line.split("=", 1)[0].strip()
            if "=" in line and not line.startswith("#") and key not in ("name", "description", "energy_profile"):
                comment = line.split("#", 1)[1] if "#" in line else ""
                assert any(u in comment.split(";")[0] for u in units - {"text"}), (path.name, line)
