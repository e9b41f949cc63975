"""lava-dl netx networks through the CLI: export --target loihi, simulate and energy take a ``.net``
(its own integers, no calibration); everything refused is one line on stderr and exit 2."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from testutil import ROOT, failed_runs, run_cases

sys.path.insert(0, str(ROOT / "tests" / "exporters"))
from netx_nets import net_input_neuron_cnn  # noqa: E402

PILOTNET = ROOT / "tests" / "data" / "lava-dl" / "pilotnet_snn" / "network.net"


def _sdnn(path):
    import h5py

    net_input_neuron_cnn(path, np.random.default_rng(0))
    with h5py.File(path, "a") as f:
        del f["layer/1/neuron/type"]
        f["layer/1/neuron/type"] = b"SDNN"
    return path


def test_small_netx_network_simulates_and_prices(tmp_path):
    net = net_input_neuron_cnn(tmp_path / "small.net", np.random.default_rng(3))
    art = tmp_path / "small.loihi"
    sdnn = _sdnn(tmp_path / "sdnn.net")
    half = tmp_path / "half.net"
    half.write_bytes(net.read_bytes()[: net.stat().st_size // 2])
    ok = [["export", net, "--target", "loihi", "--out", art, "--json"],
          ["simulate", net, "--data", "synthetic", "--limit", "6", "--json"],
          ["simulate", art, "--data", "synthetic", "--limit", "6", "--json"],
          ["energy", net, "--data", "synthetic", "--limit", "6", "--json"]]
    refused = [
        ("sigma-delta", ["simulate", sdnn, "--data", "synthetic"], None),
        ("sigma-delta export", ["export", sdnn, "--target", "loihi", "--out", tmp_path / "s.loihi"],
         tmp_path / "s.loihi"),
        ("truncated", ["energy", half, "--data", "synthetic"], None),
        ("missing", ["simulate", tmp_path / "none.net", "--data", "synthetic"], None),
        ("calibration data", ["export", net, "--target", "loihi", "--out", tmp_path / "c.loihi", "--calib-data",
                              "digits"], tmp_path / "c.loihi"),
        ("to netx", ["export", net, "--target", "netx", "--out", tmp_path / "n.net"], tmp_path / "n.net"),
        ("to onnx", ["export", net, "--target", "onnx", "--out", tmp_path / "n.onnx"], tmp_path / "n.onnx"),
        ("to nir", ["export", net, "--target", "nir", "--out", tmp_path / "n.nir"], tmp_path / "n.nir"),
        ("eval", ["eval", net, "--data", "synthetic"], None),
        ("spike mask", ["simulate", net, "--data", "synthetic", "--spike-mask", "0.5"], None),
        ("mask sweep", ["energy", net, "--data", "synthetic", "--sweep-mask", "0,0.5"], None),
        ("wrong channels", ["simulate", net, "--data", "digits"], None),
    ]
    results = run_cases(ok + [args for _, args, _ in refused], tmp_path, timeout_s=60)
    for args, rec in zip(ok, results, strict=False):
        assert rec["rc"] == 0 and not rec["traceback"], (args, rec["stderr"][-500:], rec["traceback"])
    exp, sim_net, sim_art, energy = (json.loads(r["stdout"]) for r in results[:4])
    assert exp["calibration"] is None and exp["T"] == 8 and exp["cores"] >= 4
    for sim in (sim_net, sim_art):
        # the readout is the last layer's voltage: no classes, no accuracy; the two models agree bit for bit
        assert sim["agreement"] == 1.0 and sim["accuracy"] is None and "voltage" in sim["readout"]
        assert sim["samples"] == 6 and sim["ac"] > 0
    assert sim_net["ac"] == sim_art["ac"] and sim_net["cores"] == sim_art["cores"] == exp["cores"]
    # energy counts the same simulated events as simulate (two commands, one executor)
    assert energy["total"]["ac"] == pytest.approx(sim_net["ac"])
    runs = [(name, 2, args, out) for name, args, out in refused]
    assert not failed_runs(runs, results[4:]), failed_runs(runs, results[4:])
    messages = {name: rec["stderr"] for (name, _, _), rec in zip(refused, results[4:], strict=True)}
    assert "sigma-delta" in messages["sigma-delta"] and "netx" in messages["eval"]


@pytest.mark.slow
def test_pilotnet_exports_and_simulates(tmp_path):
    art = tmp_path / "pilotnet.loihi"
    cases = [["export", PILOTNET, "--target", "loihi", "--out", art, "--json"],
             ["simulate", art, "--data", "synthetic", "--limit", "1", "--json"],
             ["simulate", PILOTNET, "--data", "digits", "--limit", "1"],
             ["energy", PILOTNET, "--data", "synthetic", "--limit", "1", "--json"]]
    results = run_cases(cases, tmp_path, timeout_s=120)
    assert results[0]["rc"] == 0 and results[1]["rc"] == 0, [r["stderr"][-500:] for r in results[:2]]
    exp, sim = json.loads(results[0]["stdout"]), json.loads(results[1]["stdout"])
    assert exp["T"] == 16 and exp["calibration"] is None and exp["neurons"] == 3 * 66 * 200 + sum(
        c * h * w for c, h, w in [(24, 32, 99), (36, 15, 49), (48, 7, 24), (64, 4, 22), (64, 2, 20)]) + 161
    assert sim["agreement"] == 1.0 and sim["accuracy"] is None and sim["cores"] == exp["cores"]
    runs = [("digits on 66 x 200", 2, cases[2], None)]
    assert not failed_runs(runs, results[2:3]), failed_runs(runs, results[2:3])
    assert "66 x 200" in results[2]["stderr"]
    assert results[3]["rc"] == 0, results[3]["stderr"][-500:]
    energy = json.loads(results[3]["stdout"])
    assert energy["total"]["ac"] == pytest.approx(sim["ac"])   # the same frame, the same simulated events


def test_crafted_netx_files_keep_the_cli_contract(tmp_path):
    """Every crafted file of the reader's table through the real ``simulate``: refused ones exit 2 with one
    line on stderr, the valid ones simulate (exit 0); never a traceback or a hang."""
    from test_netx_import_crafted import CASES, _crafted

    runs = []
    for i, (case, mutate, expected) in enumerate(CASES):
        d = tmp_path / f"c{i}"
        d.mkdir()
        path = _crafted(d, net_input_neuron_cnn, mutate)
        runs.append((case, 2 if expected == "refuse" else 0, ["simulate", path, "--data", "synthetic", "--limit",
                                                              "2", "--batch-size", "2"], None))
    results = run_cases([args for _, _, args, _ in runs], tmp_path, timeout_s=60)
    assert not failed_runs(runs, results), failed_runs(runs, results)


def test_synthetic_data_in_a_networks_height_and_width():
    """PilotNet's 66 x 200 frames: synthetic data makes them (the same on every call); a square dataset refuses."""
    from sresformer.data import open_dataset
    from sresformer.data.base import DataError

    a = open_dataset("synthetic", img_size=(66, 200), num_classes=1, in_channels=3, augment=False)
    b = open_dataset("synthetic", img_size=(66, 200), num_classes=1, in_channels=3, augment=False)
    x, _ = a.test[5]
    assert a.input_shape == (3, 66, 200) and tuple(x.shape) == (3, 66, 200)
    assert bool((x == b.test[5][0]).all()) and not bool((x == a.test[6][0]).all())
    square = open_dataset("synthetic", img_size=(8, 8), in_channels=1, augment=False)
    assert square.input_shape == (1, 8, 8)
    with pytest.raises(DataError, match="66 x 200"):
        open_dataset("digits", img_size=(66, 200), in_channels=3, augment=False)
