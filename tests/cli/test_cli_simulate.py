"""``sresformer simulate`` (and ``energy`` on an artifact): JSON contract, agreement, bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from cli.main import cli
from exporters.nir.export import export_graph, write_graph
from hw_sim.artifact import write_artifact
from hw_sim.chips import load_chip
from hw_sim.mapping import map_graph
from hw_sim.processes import Process, ProcessGraph
from sresformer.layers import SeqConv2d, SeqLinear
from sresformer.neurons import LIF
from testutil import lively_nano_artifact

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

KEYS = {"accuracy", "agreement", "samples", "ac", "mac", "energy_j", "latency_s", "cores", "per_core",
        "critical_core", "latency_zero_delay_s", "latency_pipelined_s"}




@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    # livelier than random init, so deep layers fire and send messages
    return lively_nano_artifact(tmp_path_factory.mktemp("sim"))


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_simulate_json(artifact):
    r = invoke("simulate", artifact, "--limit", 6, "--batch-size", 4, "--json")
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert KEYS <= set(s)
    assert s["samples"] == 6 and s["agreement"] == 1.0 and 0 <= s["accuracy"] <= 1
    assert s["ac"] > 0 and s["mac"] > 0 and s["dsmm_ac"] > 0
    assert s["energy_j"] == pytest.approx((0.9 * s["ac"] + 4.6 * s["mac"]) * 1e-12)   # paper-45nm
    assert len(s["per_core"]) == s["cores"] and s["latency_pipelined_s"] > s["latency_zero_delay_s"] > 0
    assert s["ac"] == pytest.approx(sum(c["ac"] for c in s["per_core"]) + s["counts"]["embedded"]["ac"])
    loihi = json.loads(invoke("simulate", artifact, "--limit", 2, "--chip-profile", "loihi", "--json").stdout)
    assert loihi["energy_j"] > (23.6 * loihi["sops"]) * 1e-12   # neuron updates and hops cost too
    human = invoke("simulate", artifact, "--limit", 2)
    assert human.exit_code == 0 and "agreement  100.00%" in human.stdout


def test_energy_of_an_artifact_matches_simulate(artifact):
    r = invoke("energy", artifact, "--limit", 4, "--json")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    names = [row["name"] for row in rep["layers"]]
    assert "prologue.0" in names and "classifier" in names and "layers.0.0.matmul1" in names
    s = json.loads(invoke("simulate", artifact, "--limit", 4, "--json").stdout)
    assert rep["total"]["ac"] == pytest.approx(s["ac"]) and rep["total"]["mac"] == pytest.approx(s["mac"])
    stem = rep["layers"][names.index("prologue.0")]
    assert stem["macs"] == 32 * 16 * 16 * 3 * 7 * 7           # dense, once per image (static stem)


def test_simulate_nir_source(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(SeqConv2d(1, 4, 3, padding=1), LIF(), nn.Flatten(), SeqLinear(4 * 8 * 8, 10))
    with torch.no_grad():
        net[0].weight.mul_(4.0)
    write_graph(export_graph(net, (1, 8, 8)), tmp_path / "toy.nir")
    r = invoke("simulate", tmp_path / "toy.nir", "--limit", 4, "--json")
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["agreement"] == 1.0 and s["samples"] == 4 and s["ac"] > 0


def test_stdout_is_one_json_object(artifact):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}   # see _one_thread
    r = subprocess.run([sys.executable, "-m", "cli.main", "simulate", str(artifact), "--limit", "2", "--json"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(r.stdout.strip().splitlines()) == 1 and json.loads(r.stdout)["samples"] == 2


def _odd_shape_artifact(path):
    p = [Process("input", "input", [], (1, 4, 5), attrs={"bits": 8}, static=True),
         Process("n", "neuron", ["input"], (1, 4, 5), params={"vth": np.array([1])},
                 attrs={"dv": 0, "du": 4096, "state_bits": 24, "decay_bits": 12})]
    pg = ProcessGraph({q.name: q for q in p}, "n", T=2, input_shape=(1, 4, 5))
    write_artifact(path, pg, map_graph(pg, load_chip("loihi2")), {})
    return path


def test_bad_input_is_one_line_exit_2(tmp_path, artifact):
    corrupt = tmp_path / "bad.loihi"
    corrupt.write_bytes(b"\x89HDF\x00garbage" * 20)
    cases = [(tmp_path / "missing.loihi",), (corrupt,), (artifact, "--chip-profile", "nope"),
             (_odd_shape_artifact(tmp_path / "odd.loihi"),), (artifact, "--data", "nonsense")]
    for case in cases:
        r = invoke("simulate", *case, "--limit", 1)
        assert r.exit_code == 2, (case, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == "", case
