"""lava-dl netx export: file structure, refusals, and spike agreement with Lava's bit-accurate CPU model."""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import sresformer
from exporters.loihi.flatgraph import FlatGraph
from exporters.loihi.lower import lower
from exporters.loihi.netx import NetxError, netx_chain, to_netx_grid, write_netx
from exporters.nir.export import export_graph, write_graph
from exporters.quantize.fakequant import FakeQuantModel
from exporters.quantize.ranges import value_ranges
from sresformer.layers import SeqConv2d, SeqLinear
from sresformer.neurons import IF, LIF
from testutil import ROOT, warm_up

T = 6
RUNNER = Path(__file__).with_name("lava_netx_runner.py")


def _mlp():
    return nn.Sequential(SeqLinear(20, 16, bias=True), LIF(v_threshold=0.2), SeqLinear(16, 10, bias=True),
                         LIF(v_threshold=0.1)), (20,)


def _cnn():
    return nn.Sequential(SeqConv2d(2, 4, 3, padding=1, bias=True), LIF(v_threshold=0.2), nn.Flatten(),
                         SeqLinear(4 * 6 * 6, 10, bias=True), IF(v_threshold=0.3)), (2, 6, 6)


def _lowered(make, seed=0):
    torch.manual_seed(seed)
    net, shape = make()
    fg = FlatGraph(export_graph(net, shape))
    x = torch.rand(8, *shape)
    return lower(fg, value_ranges(fg, [x.unsqueeze(0).expand(T, *x.shape)], T), T), x


@pytest.mark.parametrize("make", [_mlp, _cnn])
def test_file_structure_is_our_integer_model(make, tmp_path):
    pg, _ = _lowered(make)
    grid = to_netx_grid(pg)
    info = write_netx(pg, tmp_path / "m.net")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.net"]  # atomic: no temporary left
    layers = netx_chain(grid)
    with h5py.File(tmp_path / "m.net") as f:
        groups = [f["layer"][str(i)] for i in range(len(f["layer"]))]
        types = [g["type"][0].decode() for g in groups]
        assert types[0] == "input" and list(groups[0]["shape"][()]) == list(pg.input_shape)
        assert f.attrs["sresformer.input_exponent"] == grid.processes["input"].exponent == info["input_exponent"]
        syn_groups = [g for g, t in zip(groups, types, strict=True) if t in ("dense", "conv")]
        assert len(syn_groups) == len(layers) == info["layers"]
        if make is _cnn:
            assert types == ["input", "conv", "flatten", "dense"]
            assert list(syn_groups[0]["stride"][()]) == [1, 1] and list(syn_groups[0]["padding"][()]) == [1, 1]
        for g, layer in zip(syn_groups, layers, strict=True):
            syn, neu = layer["synapse"], layer["neuron"]
            orig = pg.processes[syn.name]
            # weights: exactly our 8-bit mantissas, torch layout; the grid only changes units
            np.testing.assert_array_equal(g["weight"][()], orig.params["weight"])
            assert list(g["shape"][()]) == list(syn.out_shape)
            np.testing.assert_array_equal(g["bias"][()] * 64, syn.params["bias"])
            n = g["neuron"]
            assert n["type"][0].decode() == "CUBA" and n["iDecay"][()] == 4096
            assert n["vDecay"][()] == neu.attrs.dv == pg.processes[neu.name].attrs.dv
            assert n["vThMant"][()] * 64 + 1 == int(neu.params["vth"][0])  # netx: v > vThMant << 6
            # the threshold in real units moves by at most half a weight LSB (64 grid units) plus one unit
            unit_ratio = 2.0 ** (syn.exponent - orig.exponent)  # one grid membrane LSB in our units
            old = float(pg.processes[neu.name].params["vth"][0])
            assert abs(int(neu.params["vth"][0]) * unit_ratio - old) <= 33 * unit_ratio


def test_grid_model_tracks_our_integer_model():
    pg, x = _lowered(_cnn)
    ours = FakeQuantModel(pg)(x)
    grid = FakeQuantModel(to_netx_grid(pg))(x)
    assert (ours.argmax(1) == grid.argmax(1)).float().mean() >= 0.75


def test_refusals_name_the_process():
    with pytest.raises(NetxError, match=r"'2'.*must end in a spiking neuron"):
        torch.manual_seed(0)
        net = nn.Sequential(SeqLinear(4, 3), LIF(), SeqLinear(3, 2))
        fg = FlatGraph(export_graph(net, (4,)))
        x = torch.rand(4, 4)
        write_netx(lower(fg, value_ranges(fg, [x.unsqueeze(0).expand(T, *x.shape)], T), T), "/nonexistent/x.net")


def test_decays_of_another_width_are_refused():
    """netx's decays are 12-bit: a graph lowered for a chip with 10-bit decays cannot be written."""
    import dataclasses

    from hw_sim.chips import load_chip

    torch.manual_seed(0)
    net, shape = _mlp()
    fg = FlatGraph(export_graph(net, shape))
    x = torch.rand(8, *shape)
    chip = dataclasses.replace(load_chip("loihi2"), decay_bits=10)
    pg = lower(fg, value_ranges(fg, [x.unsqueeze(0).expand(T, *x.shape)], T), T, chip=chip)
    with pytest.raises(NetxError, match=r"'1'.*10-bit decays \(netx's are 12-bit\)") as e:
        write_netx(pg, "/nonexistent/x.net")
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def nano_ckpt(tmp_path_factory):
    from sresformer.data import open_dataset

    d = tmp_path_factory.mktemp("netx")
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(16)])
    sresformer.save_checkpoint(warm_up(sresformer.create_model("spikingresformer_nano"), x, steps=2), d / "m.ckpt")
    return d / "m.ckpt"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "cli.main", "export", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)


def test_cli_refuses_spikingresformer_in_one_line(nano_ckpt, tmp_path):
    r = _cli(nano_ckpt, "--target", "netx", "--out", tmp_path / "m.net")
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "netx cannot represent process" in lines[0]
    assert any(w in lines[0] for w in ("pooling", "residual", "attention"))
    assert "--target lava" in lines[0]   # the target that builds such graphs
    assert not (tmp_path / "m.net").exists() and r.stdout == ""


def test_cli_exports_a_spiking_cnn(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(SeqConv2d(1, 4, 3, stride=2, padding=1, bias=True), LIF(v_threshold=0.3), nn.Flatten(),
                        SeqLinear(4 * 8 * 8, 10, bias=True), LIF(v_threshold=0.2))
    write_graph(export_graph(net, (1, 16, 16), metadata={"T": 4}), tmp_path / "m.nir")
    r = _cli(tmp_path / "m.nir", "--target", "netx", "--out", tmp_path / "m.net", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert s["target"] == "netx" and s["layers"] == 2 and s["T"] == 4 and "accuracy_netx" in s
    with h5py.File(tmp_path / "m.net") as f:
        assert list(f["layer"]["1"]["stride"][()]) == [2, 2]


def test_our_test_modules_are_ours():
    # lava's and spikingjelly's wheels install a top-level `tests` package; it must never be ours
    assert Path(__file__).resolve().parent == ROOT / "tests" / "exporters"
    assert Path(sys.modules["testutil"].__file__).resolve() == ROOT / "tests" / "testutil.py"
    stray = sys.modules.get("tests")
    assert stray is None or ROOT in Path(stray.__file__ or ROOT).resolve().parents
    conftests = [m for name, m in sys.modules.items() if name.endswith("conftest") and getattr(m, "__file__", None)]
    assert conftests and all(ROOT in Path(m.__file__).resolve().parents for m in conftests)


# -- Lava (lava-nc 0.10 / lava-dl 0.6 via `bash .ci/install-lava`) ------------------------------------


def _run_lava(path, x_int, steps, bits, tmp_path):
    """Lava's spikes per layer (subprocess, hard 120 s timeout: a hung runtime never blocks the suite)."""
    np.save(tmp_path / "in.npy", x_int)
    out = tmp_path / "out.npz"
    r = subprocess.run([sys.executable, str(RUNNER), str(path), str(tmp_path / "in.npy"), str(steps), str(bits),
                        str(T), "1", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return dict(np.load(out))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("make", [_mlp, _cnn])
def test_lava_spikes_equal_our_integer_semantics(make, tmp_path):
    pytest.importorskip("lava.lib.dl.netx", reason="Lava is not installed (bash .ci/install-lava)")
    pg, x = _lowered(make)
    info = write_netx(pg, tmp_path / "m.net")
    grid = to_netx_grid(pg)
    fq = FakeQuantModel(grid)
    layers = netx_chain(grid)
    L = len(layers)
    # two samples back to back, T steps each; netx resets layer i at each of its sample boundaries
    samples = x[:2]
    with h5py.File(tmp_path / "m.net") as f:  # the host's integers, as the file states them
        e, bits = int(f.attrs["sresformer.input_exponent"]), int(f.attrs["sresformer.input_bits"])
    q = 2 ** (bits - 1) - 1
    x_int = np.clip(np.round(samples.double().numpy() / 2.0 ** e), -q, q)  # [2, *input]
    stream = np.concatenate([np.repeat(x_int[:1], T, 0), np.repeat(x_int[1:], T, 0),
                             np.zeros((L, *x_int.shape[1:]))]).astype(np.int64)
    lava = _run_lava(tmp_path / "m.net", stream, 2 * T + L, info["lava_input_message_bits"], tmp_path)
    _, ours = fq.run(samples, keep=True)
    for i, layer in enumerate(layers):
        got = lava[f"layer{i}"]
        want = ours[layer["neuron"].name].numpy()                       # [T, 2, ...]
        assert want.sum() > 0, f"layer {i} is silent: the test would prove nothing"
        for s in range(2):
            lag = s * T + i + 1   # one step per synapse (Lava's Dense/Conv buffer)
            np.testing.assert_array_equal(got[lag:lag + T].reshape(T, -1), want[:, s].reshape(T, -1),
                                          err_msg=f"layer {i}, sample {s}")


def test_simulate_reads_our_netx_file(tmp_path):
    """``sresformer simulate X.net``: the netx import's graph passes the artifact reader's checks (its first
    synapse reads only the static host input, so it is static) and the run ends with status 0."""
    pg, _ = _lowered(_cnn)
    write_netx(pg, tmp_path / "m.net")
    r = subprocess.run([sys.executable, "-m", "cli.main", "simulate", str(tmp_path / "m.net"), "--data", "synthetic",
                        "--limit", "1"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "agreement  100.00%" in r.stdout
