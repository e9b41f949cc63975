"""Saturation through the CLI: export refuses a model that saturates on its calibration data, and
``simulate`` reports (``--json``: ``saturated``) and warns about values clipped at the chip's widths."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from cli.main import cli
from exporters.nir.export import export_graph, write_graph
from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.artifact import write_artifact
from hw_sim.chips import load_chip
from hw_sim.mapping import map_graph
from hw_sim.processes import Process, ProcessGraph
from hw_sim.simulate import open_test_data
from sresformer.layers import SeqConv2d, SeqLinear
from sresformer.neurons import IF

pytestmark = pytest.mark.usefixtures("one_thread")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _draining_if_net(path, T: int):
    """A conv whose output is negative everywhere into IF neurons: an IF membrane (no leak) sums it
    for T steps, so it reaches T times the conv's calibrated peak: for T = 16 far past the 24-bit
    state (the units give the conv's peak about 2**21), for T = 2 well inside it."""
    torch.manual_seed(0)
    net = nn.Sequential(SeqConv2d(1, 2, 3, padding=1), IF(), nn.Flatten(), SeqLinear(2 * 8 * 8, 10))
    with torch.no_grad():
        net[0].weight.copy_(-net[0].weight.abs() - 0.1)
    write_graph(export_graph(net, (1, 8, 8), metadata={"T": T}), path)
    return path


def test_export_refuses_a_model_that_saturates_on_its_calibration_data(tmp_path):
    out = tmp_path / "m.loihi"
    r = invoke("export", _draining_if_net(tmp_path / "drain.nir", 16), "--target", "loihi", "--out", out)
    assert r.exit_code == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "saturates its 24-bit state" in lines[0] and "peak 2^" in lines[0] and "calibration data" in lines[0]
    peak = float(lines[0].split("peak 2^")[1].split()[0])
    assert 23 < peak < 23 + np.log2(16) + 0.1   # over the state, at most T times the unit's limit 2**23 / 4
    assert not out.exists() and r.stdout == ""
    ok = invoke("export", _draining_if_net(tmp_path / "short.nir", 2), "--target", "loihi", "--out", out)
    assert ok.exit_code == 0, ok.stderr   # the same model over 2 steps stays inside its state
    assert out.exists()


def _saturating_artifact(path, out_bits: int):
    """Pixels (8 bits, unit 2**-7: magnitudes up to 127) times 100 in a 1x1 conv saturating at ``out_bits``, then a
    dense readout (the output)."""
    procs = [Process("input", "input", [], (1, 8, 8), attrs={"bits": 8}, exponent=-7, static=True),
             Process("c", "synapse", ["input"], (1, 8, 8), params={"weight": np.full((1, 1, 1, 1), 100),
                                                               "bias": np.zeros(1, np.int64)},
                     attrs={"op": "conv", "shift": 0, "graded_input": True, "weight_bits": 8, "stride": (1, 1),
                            "padding": (0, 0), "dilation": (1, 1), "groups": 1, "out_bits": out_bits}, static=True),
             Process("n", "neuron", ["c"], (1, 8, 8), params={"vth": np.array([20000])},
                     attrs={"du": 4096, "dv": 2048, "state_bits": 24, "decay_bits": 12}),
             Process("f", "flatten", ["n"], (64,)),
             Process("fc", "synapse", ["f"], (10,), params={"weight": np.ones((10, 64), np.int64),
                                                           "bias": np.zeros(10, np.int64)},
                     attrs={"op": "dense", "shift": 0, "graded_input": False, "weight_bits": 8, "out_bits": 24})]
    pg = ProcessGraph({p.name: p for p in procs}, "fc", T=4, input_shape=(1, 8, 8))
    write_artifact(path, pg, map_graph(pg, load_chip("loihi2")), {})
    return path, pg


def test_simulate_reports_and_warns_about_saturation(tmp_path):
    path, pg = _saturating_artifact(tmp_path / "sat.loihi", 12)   # limit 2047: pixels above 20 saturate
    r = invoke("simulate", path, "--limit", 4, "--json")
    assert r.exit_code == 0, r.stderr
    sat = json.loads(r.stdout)["saturated"]
    data, _ = open_test_data(pg, "digits", 4)
    x = torch.stack([data[i][0] for i in range(4)])
    fq = FakeQuantModel(pg)
    fq.run(x)   # the independent implementation's count on the same images
    pixels = torch.round(x.double() * 128).clamp(-127, 127)   # the input's 8-bit integers (unit 2**-7)
    by_hand = int((pixels.abs() * 100 > 2047).sum())   # the static conv runs once per inference
    assert sat == {"total": by_hand, "per_process": {"c": by_hand}} == {"total": fq.saturated["c"],
                                                                        "per_process": fq.saturated}
    assert by_hand > 0
    human = invoke("simulate", path, "--limit", 4).stdout
    assert sum("saturated" in line and "outside its calibration" in line for line in human.splitlines()) == 1
    quiet_path, _ = _saturating_artifact(tmp_path / "ok.loihi", 24)
    quiet = invoke("simulate", quiet_path, "--limit", 4, "--json")
    assert json.loads(quiet.stdout)["saturated"] == {"total": 0, "per_process": {}}
    assert "saturated" not in invoke("simulate", quiet_path, "--limit", 4).stdout
