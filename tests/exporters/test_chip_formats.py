"""The chip's bias and weight-exponent formats (exporters/loihi/formats.py), against hand-worked values
and the numbers of the chip TOML files (read here with tomllib, not through the code's Chip)."""

import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hw_sim
from exporters.loihi.formats import FormatError, fit_formats, fit_shift, representable_bias
from exporters.nir.export import export_graph, write_graph
from hw_sim.artifact import read_artifact
from hw_sim.chips import load_chip
from hw_sim.mapping import plan_groups
from hw_sim.processes import Process, ProcessGraph
from sresformer.layers import SeqConv2d, SeqLinear
from sresformer.neurons import LIF
from testutil import export_small

PROFILES = Path(hw_sim.__file__).parent / "profiles"


def toml_chip(name: str) -> dict:
    return tomllib.loads((PROFILES / f"{name}.toml").read_text())["chip"]


@pytest.mark.parametrize("b, want", [
    (4095, 4095),                 # the largest mantissa at exponent 0
    (4096, 4096),                 # 2048 << 1
    (4097, 4098),                 # 4097 / 2 = 2048.5 rounds half up to 2049, << 1
    (8191, 8192),                 # 4095.5 does not fit at e = 1; 8191 / 4 = 2047.75 -> 2048 << 2
    (100_000, 100_000),           # 3125 << 5 exactly
    (100_001, 100_000),           # 3125.03 -> 3125 << 5
    (524_160, 524_160),           # 4095 << 7, the largest
    (524_161, 524_160),           # 4095.008 -> 4095 << 7
    (-4096, -4096),               # the most negative mantissa at exponent 0
    (-4097, -4096),               # -2048.5 rounds half up to -2048, << 1
    (-524_288, -524_288),         # -4096 << 7, the most negative
    (-524_352, -524_288),         # -4096.5 rounds half up to -4096, << 7
    (0, 0),
])
def test_representable_bias_by_hand(b, want):
    assert representable_bias(np.array([b]), 13, 7).tolist() == [want]


@pytest.mark.parametrize("b, want", [(524_224, 524_160),      # 4095.5 << 7 would round up to 4096 << 7
                                     (851_924, 524_160), (-524_353, -524_288), (-10 ** 7, -524_288)])
def test_bias_beyond_the_format_saturates(b, want):
    assert representable_bias(np.array([3, b]), 13, 7).tolist() == [3, want]


def test_representable_bias_is_the_nearest_chip_value():
    """Against a brute-force list of every value the 13-bit mantissa / 3-bit exponent format holds."""
    table = np.unique(np.concatenate([np.arange(-4096, 4096) << e for e in range(8)]))
    b = np.random.default_rng(0).integers(-524_288, 524_161, 4000)
    got = representable_bias(b, 13, 7)
    assert np.isin(got, table).all()
    nearest = np.abs(table[None, :] - b[:, None]).min(1)
    assert np.array_equal(np.abs(got - b), nearest)          # no chip value is closer


def test_shift_moves_into_the_mantissas_when_exact():
    w = np.array([3, -5, 7])
    assert [x.tolist() if hasattr(x, "tolist") else x for x in fit_shift(w, 15, 8, -2, 13)] == [[12, -20, 28], 13, 0]
    w = np.array([8, -16, 24, 0])
    assert [x.tolist() if hasattr(x, "tolist") else x for x in fit_shift(w, -5, 8, -2, 13)] == [[1, -2, 3, 0], -2, 0]


def test_shift_below_the_range_requantizes():
    # shift -4 -> -2: the mantissas lose 2 bits: 13/4 = 3.25 -> 3, -6/4 = -1.5 -> -2 (half to even), 100/4 = 25
    w, k, lost = fit_shift(np.array([13, -6, 100]), -4, 8, -2, 13)
    assert (w.tolist(), k, lost) == ([3, -2, 25], -2, 2)


@pytest.mark.parametrize("w, shift, match", [
    ([100], 14, "cannot take the other 1 bits within 8 bits"),     # 200 > 127
    ([1, -1, 3], -5, "every mantissa rounds to 0"),                # 3 / 8 -> 0
])
def test_nothing_representable_is_refused(w, shift, match):
    with pytest.raises(ValueError, match=match):
        fit_shift(np.array(w), shift, 8, -2, 13)


def spike_chain(shift: int, weight, bias) -> ProcessGraph:
    """input -> neuron -> dense synapse (spikes in) -> neuron."""
    neuron = {"dv": 0, "du": 4096, "state_bits": 24, "decay_bits": 12}
    w = np.asarray(weight, dtype=np.int64)
    procs = [Process("input", "input", [], (w.shape[1],), attrs={"bits": 8}, static=True),
             Process("n0", "neuron", ["input"], (w.shape[1],), params={"vth": np.array([1])}, attrs=neuron),
             Process("fc", "synapse", ["n0"], (w.shape[0],), params={"weight": w, "bias": np.asarray(bias)},
                     attrs={"op": "dense", "shift": shift, "graded_input": False, "weight_bits": 8}),
             Process("n1", "neuron", ["fc"], (w.shape[0],), params={"vth": np.array([100])}, attrs=neuron)]
    return ProcessGraph({p.name: p for p in procs}, "n1", T=2, input_shape=(w.shape[1],))


def test_fit_formats_rewrites_a_graph_and_notes_the_rescale():
    pg = spike_chain(-4, [[13, -6], [100, 2]], [4097, -100_001])
    notes = fit_formats(pg, load_chip("loihi2"))
    fc = pg.processes["fc"]
    assert fc.attrs.shift == -2 and fc.params["weight"].tolist() == [[3, -2], [25, 0]]   # 2 / 4 = 0.5 -> 0
    assert fc.params["bias"].tolist() == [4098, -100_000]
    assert notes == [{"layer": "fc", "shift": -4, "new_shift": -2, "bits_lost": 2}]


def test_fit_formats_refuses_in_one_line_naming_the_layer():
    with pytest.raises(FormatError, match=r"^layer 'fc': shift -6 is below the chip's -2 .*loihi2 cannot") as e:
        fit_formats(spike_chain(-6, [[1, 2]], [0]), load_chip("loihi2"))
    assert "\n" not in str(e.value)


def test_fit_formats_saturates_a_bias_beyond_the_format_and_notes_it():
    pg = spike_chain(0, [[1, 2], [3, 4]], [600_000, 5])
    assert fit_formats(pg, load_chip("loihi2")) == [{"layer": "fc", "bias_saturated": 600_000, "to": 524_160}]
    assert pg.processes["fc"].params["bias"].tolist() == [524_160, 5]


class BiasNet(nn.Module):
    """Spiking convs with large biases and a dense layer with tiny weights: the lowering has to round
    biases and move shifts."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.c1 = SeqConv2d(2, 4, 3, padding=1, bias=True)
        self.c2 = SeqConv2d(4, 4, 3, padding=1, bias=True)
        self.fc = SeqLinear(4 * 8 * 8, 10, bias=True)
        with torch.no_grad():
            for m in (self.c1, self.c2, self.fc):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)

    def chain(self):
        return nn.Sequential(self.c1, LIF(), self.c2, LIF(), nn.Flatten(), self.fc)


def representable_by_toml(v: np.ndarray, chip: dict) -> bool:
    """Every value is ``m << e`` with the TOML's mantissa width and exponent range (a loop over e)."""
    ok = np.zeros(v.shape, dtype=bool)
    half = 1 << (chip["bias_mant_bits"] - 1)
    for e in range(chip["bias_exp_max"] + 1):
        ok |= (v % (1 << e) == 0) & (v // (1 << e) >= -half) & (v // (1 << e) < half)
    return bool(ok.all())


@pytest.mark.parametrize("name", ["loihi2"])
def test_lowered_model_stays_within_the_toml_formats(tmp_path, name):
    write_graph(export_graph(BiasNet().chain(), (2, 8, 8)), tmp_path / "b.nir")
    path = export_small(tmp_path / "b.nir", tmp_path / "b.loihi", calib_data="digits", T=3, chip=name)
    pg, _, report = read_artifact(path)
    chip = toml_chip(name)
    lo = chip["weight_exp_min"] + chip["input_align_bits"]
    hi = chip["weight_exp_max"] + chip["input_align_bits"]
    syn = [p for p in pg if p.kind == "synapse" and not p.static]
    assert len(syn) == 2    # c2 and fc read spikes
    for p in syn:
        assert lo <= p.attrs.shift <= hi, p.name
    groups, _, _ = plan_groups(pg)
    biases = [sum(pg.processes[m].params["bias"] for m in g.members if m in {p.name for p in syn})
              for g in groups.values() if any(m in {p.name for p in syn} for m in g.members)]
    assert biases and all(representable_by_toml(np.asarray(b), chip) for b in biases)
    assert max(int(np.abs(b).max()) for b in biases) > 2 ** (chip["bias_mant_bits"] - 1)   # rounding was needed
    assert isinstance(report["formats"], list)
