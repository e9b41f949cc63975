"""Chip and energy profiles: the built-ins carry the published numbers; bad files are refused."""

import pytest

from hw_sim.chips import ProfileError, available, load_chip, load_energy_profile


def test_builtin_names():
    assert available("chip") == ["loihi1", "loihi2"]
    assert available("energy") == ["loihi", "paper-45nm"]


def test_published_numbers():
    paper = load_energy_profile("paper-45nm")
    assert (paper.ac_pj, paper.mac_pj) == (0.9, 4.6)
    loihi = load_energy_profile("loihi")
    assert (loihi.ac_pj, loihi.synop_ns, loihi.neuron_active_pj, loihi.neuron_idle_pj) == (23.6, 3.5, 81.0, 52.0)
    assert (loihi.spike_in_tile_pj, loihi.hop_ew_pj, loihi.hop_ns_pj) == (1.7, 3.0, 4.0)
    assert (loihi.barrier_ns, loihi.barrier_max_ns) == (113.0, 465.0)
    assert load_chip("loihi1").neurons_per_core == 1024
    assert load_chip().cores_per_chip == 128


def test_user_file(tmp_path):
    text = (tmp_path / "x.toml")
    src = load_energy_profile("paper-45nm")
    import dataclasses
    body = "\n".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}"
                     for k, v in dataclasses.asdict(src).items() if v is not None)
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
