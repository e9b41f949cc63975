"""lava-dl netx import: netx's integers as read by h5py, Lava's own weight arithmetic, refusals,
and spikes equal to Lava's bit-accurate netx simulation."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from netx_nets import NETS, net_pool

from exporters.loihi.netx_import import dense_weights, read_netx
from exporters.loihi.netx_read import NetxImportError
from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.executor import Executor
from testutil import ROOT

PILOTNET = ROOT / "tests" / "data" / "lava-dl" / "pilotnet_snn" / "network.net"


def _attr(p, key):
    a = p.attrs
    return a[key] if isinstance(a, dict) else getattr(a, key)


def test_pilotnet_graph_holds_the_files_integers():
    """Every layer of PilotNet against the file read directly with h5py (not through our reader)."""
    pg = read_netx(PILOTNET)
    with h5py.File(PILOTNET) as f:
        groups = [f["layer"][str(i)] for i in range(len(f["layer"]))]
        assert pg.T == int(f["simulation"]["tSample"][()]) == 16
        assert tuple(pg.input_shape) == tuple(groups[0]["shape"][()]) == (3, 66, 200)
        neurons = [g for g in groups if "neuron" in g]
        assert pg.metadata["neuron_layers"] == [f"layer{i}" for i, g in enumerate(groups) if "neuron" in g]
        for i, g in enumerate(groups):
            if "neuron" not in g:
                continue
            neu, syn = pg.processes[f"layer{i}"], pg.processes[f"layer{i}.synapse"]
            n = g["neuron"]
            assert _attr(neu, "du") == n["iDecay"][()] and _attr(neu, "dv") == n["vDecay"][()]
            # netx spikes on v > 64 vThMant, we on v >= vth: the same for integers when vth = 64 vThMant + 1
            assert int(neu.params["vth"][0]) == 64 * int(n["vThMant"][()]) + 1
            assert _attr(syn, "shift") == 6
            if i == 0:   # the input layer: host frame x weight + bias, one weight per channel
                np.testing.assert_array_equal(syn.params["weight"].reshape(-1), [int(g["weight"][()])] * 3)
                np.testing.assert_array_equal(syn.params["bias"], [64 * int(g["bias"][()])] * 3)
                assert _attr(syn, "groups") == 3 and syn.static
                continue
            w = g["weight"][()].astype(np.int64)
            np.testing.assert_array_equal(syn.params["weight"].reshape(w.shape[0] if w.ndim > 1 else 1, -1),
                                          w.reshape(w.shape[0] if w.ndim > 1 else 1, -1))
            np.testing.assert_array_equal(syn.params["bias"], 64 * g["bias"][()].astype(np.int64).reshape(-1))
            if g["type"][0] == b"conv":
                assert tuple(_attr(syn, "stride")) == tuple(g["stride"][()])
                assert tuple(_attr(syn, "padding")) == tuple(g["padding"][()])
                assert tuple(syn.out_shape) == tuple(g["shape"][()])
        assert len(neurons) == 10
    assert pg.output == "readout" and pg.metadata["readout"] == "voltage"   # vThMant 131071, vDecay 0
    assert pg.processes["readout"].sources == ["layer10.synapse"]


def test_pilotnet_executor_equals_fake_quant():
    pg = read_netx(PILOTNET)
    x = torch.randint(-3, 4, (2, 3, 66, 200)).double()
    ours = Executor(pg).run(x, keep=True)
    logits, values = FakeQuantModel(pg).run(x, keep=True)
    assert torch.equal(logits.double().expand_as(ours.logits), ours.logits.double())
    for name in pg.metadata["neuron_layers"][:-1]:
        assert ours.values[name].sum() > 0, f"{name} is silent: the comparison would prove nothing"
        assert torch.equal(values[name].double(), ours.values[name].double()), name


def _lava_dense_sum(w, s):
    """Lava's own arithmetic for a netx dense layer: netx's optimize_weight_bits, then Lava's Dense clip,
    truncation and weight exponent (library functions, not ours)."""
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    w2, bits, exp, _ = optimize_weight_bits(w.astype(np.float64))
    mode = determine_sign_mode(w2)
    w3 = truncate_weights(clip_weights(w2, mode, num_bits=8), mode, bits)
    a = w3 @ s
    return a << exp if exp > 0 else a >> -exp


@pytest.mark.parametrize("seed", range(40))
def test_dense_weights_match_lavas_arithmetic(seed):
    pytest.importorskip("lava.lib.dl.netx", reason="Lava is not installed (bash .ci/install-lava)")
    rng = np.random.default_rng(seed)
    lo, hi = [(-8, 8), (0, 30), (-40, 0), (-127, 127), (-1, 0), (-2, 0), (0, 1), (-256, 0), (1, 255),
              (-128, 127)][seed % 10]
    step = [1, 2, 4][seed % 3]
    w = rng.integers(lo // step, hi // step + 1, (7, 12)) * step
    s = rng.integers(0, 2, (12, 20))
    try:
        eff = dense_weights(w, "test")
    except NetxImportError:
        # refused: Lava's arithmetic indeed differs from the plain integer product on some spike pattern
        if w.any():
            probe = np.concatenate([np.eye(12, dtype=np.int64), np.ones((12, 1), np.int64), s], 1)
            assert not np.array_equal(_lava_dense_sum(w, probe), w @ probe)
        return
    np.testing.assert_array_equal(eff @ s, _lava_dense_sum(w, s))


RUNNER = Path(__file__).with_name("lava_netx_import_runner.py")


def _host_values(pg, path, rng, n=2):
    """Two samples of host integers (ours, executor input) and what the host sends Lava (the same integers,
    or ``weight q + bias`` into an input neuron: computed here from the file, not by our graph)."""
    inp = pg.processes["input"]
    q = 2 ** (_attr(inp, "bits") - 1) - 1
    with h5py.File(path) as f:
        g = f["layer"]["0"]
        if "neuron" in g:
            x = rng.integers(-3, 4, (n, *pg.input_shape))
            return torch.from_numpy(x).double(), int(g["weight"][()]) * x + int(g["bias"][()]), 0
        if "sresformer.input_exponent" in f.attrs:   # our writer's file: real pixels, the host rounds them
            x = torch.rand(n, *pg.input_shape)
            e = int(f.attrs["sresformer.input_exponent"])
            return x, np.clip(np.round(x.double().numpy() / 2.0 ** e), -q, q).astype(np.int64), _attr(inp, "bits")
    x = rng.integers(-q // 3, q // 3 + 1, (n, *pg.input_shape))
    return torch.from_numpy(x).double(), x, _attr(inp, "bits")


@pytest.fixture(scope="module")
def lava_runs(tmp_path_factory):
    """Every net of NETS in Lava's fixed-point netx simulation (one subprocess) and in our two models."""
    pytest.importorskip("lava.lib.dl.netx", reason="Lava is not installed (bash .ci/install-lava)")
    import json
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("netx_lava")
    runs, jobs = {}, []
    for k, (name, make) in enumerate(NETS.items()):
        rng = np.random.default_rng(100 + k)
        path = make(tmp / f"{name}.net", rng)
        pg = read_netx(path)
        x, host, bits = _host_values(pg, path, rng)
        neuron_in = host is not None and bits == 0
        L = len(pg.metadata["neuron_layers"])
        T = pg.T
        stream = np.concatenate([np.repeat(host[:1], T, 0), np.repeat(host[1:], T, 0),
                                 np.zeros((L + 1, *host.shape[1:]), np.int64)])
        np.save(tmp / f"{name}.npy", stream)
        lava_file = net_pool(tmp / "pool_as_conv.net", np.random.default_rng(100 + k), as_conv=True) \
            if name == "pool" else path
        jobs.append({"net": str(lava_file), "input": str(tmp / f"{name}.npy"), "steps": len(stream),
                     "bits": bits, "reset": T, "offset": 0 if neuron_in else 1, "out": str(tmp / f"{name}.npz")})
        runs[name] = {"pg": pg, "x": x, "lag0": 0 if neuron_in else 1, "out": tmp / f"{name}.npz", "path": path}
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    r = subprocess.run([sys.executable, str(RUNNER), str(tmp / "jobs.json")], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    for run in runs.values():
        run["lava"] = dict(np.load(run["out"]))
    return runs


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("model", ["executor", "fake-quant"])
def test_spikes_equal_lavas_netx_run(lava_runs, name, model):
    """Every layer's spikes, every step, two samples back to back (netx resets each layer at its sample
    boundary), equal to Lava's; a voltage readout equals Lava's probed voltage."""
    run = lava_runs[name]
    pg, x, lava = run["pg"], run["x"], run["lava"]
    if model == "executor":
        res = Executor(pg).run(x, keep=True)
        values = res.values
    else:
        _, values = FakeQuantModel(pg).run(x, keep=True)
    T = pg.T
    for i, layer in enumerate(pg.metadata["neuron_layers"]):
        want = values[layer].double().numpy()                       # [T, 2, ...]
        if i < len(pg.metadata["neuron_layers"]) - 1 or pg.metadata["readout"] == "spikes":
            assert want.sum() > 0, f"{name}: {layer} is silent: the test would prove nothing"
        for s in range(2):
            lag = s * T + i + run["lag0"]                            # one step per synapse (Lava's buffers)
            np.testing.assert_array_equal(lava[f"layer{i}"][lag:lag + T].reshape(T, -1), want[:, s].reshape(T, -1),
                                          err_msg=f"{name}: {layer}, sample {s}")
    if pg.metadata["readout"] == "voltage":
        cur = values[pg.output].double().numpy()
        lag0 = len(pg.metadata["neuron_layers"]) - 1 + run["lag0"]
        for s in range(2):
            v = lava["v_last"][s * T + lag0:s * T + lag0 + T]
            np.testing.assert_array_equal(v.reshape(T, -1), np.cumsum(cur[:, s], 0).reshape(T, -1))


PILOTNET_LAVA_STEPS = 12   # Lava's CPU conv takes ~3 s per PilotNet step: a cropped run keeps this under a minute


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_pilotnet_spikes_equal_lavas_netx_run(tmp_path):
    """lava-dl's PilotNet SNN, one frame: every layer's spikes over the first steps Lava's run reaches,
    and the readout voltage, equal to Lava's fixed-point netx simulation."""
    pytest.importorskip("lava.lib.dl.netx", reason="Lava is not installed (bash .ci/install-lava)")
    import json
    import subprocess
    import sys

    pg = read_netx(PILOTNET)
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, (1, *pg.input_shape))
    with h5py.File(PILOTNET) as f:   # the host injects weight * frame + bias into the input neurons
        host = int(f["layer/0/weight"][()]) * x + int(f["layer/0/bias"][()])
    steps = PILOTNET_LAVA_STEPS
    np.save(tmp_path / "in.npy", np.repeat(host, steps, 0))
    job = {"net": str(PILOTNET), "input": str(tmp_path / "in.npy"), "steps": steps, "bits": 0, "reset": pg.T,
           "offset": 0, "out": str(tmp_path / "out.npz")}
    (tmp_path / "jobs.json").write_text(json.dumps([job]))
    r = subprocess.run([sys.executable, str(RUNNER), str(tmp_path / "jobs.json")], capture_output=True, text=True,
                       timeout=220)
    assert r.returncode == 0, r.stderr[-3000:]
    lava = dict(np.load(tmp_path / "out.npz"))
    ours = Executor(pg).run(torch.from_numpy(x).double(), keep=True).values
    layers = pg.metadata["neuron_layers"]
    for i, name in enumerate(layers):
        n = steps - i          # layer i's step t is Lava's step t + i
        want = ours[name].numpy()[:n, 0]
        if i < 6:
            assert want.sum() > 0, f"{name} is silent: the test would prove nothing"
        np.testing.assert_array_equal(lava[f"layer{i}"][i:].reshape(n, -1), want.reshape(n, -1), err_msg=name)
    n = steps - (len(layers) - 1)
    v = np.cumsum(ours["readout"].numpy()[:n, 0], 0)
    np.testing.assert_array_equal(lava["v_last"][len(layers) - 1:].reshape(n, -1), v.reshape(n, -1))


def test_our_writers_file_reads_back_as_its_netx_grid(tmp_path):
    """``--target netx`` then ``read_netx``: the same spikes, every layer, as the writer's own statement of what
    the file computes (``FakeQuantModel(to_netx_grid(pg))``); runs without Lava."""
    from torch import nn

    from exporters.loihi.flatgraph import FlatGraph
    from exporters.loihi.lower import lower
    from exporters.loihi.netx import netx_chain, to_netx_grid, write_netx
    from exporters.nir.export import export_graph
    from exporters.quantize.ranges import value_ranges
    from sresformer.layers import SeqConv2d, SeqLinear
    from sresformer.neurons import IF, LIF

    net = nn.Sequential(SeqConv2d(2, 6, 3, stride=2, padding=1, bias=True), LIF(v_threshold=0.15), nn.Flatten(),
                        SeqLinear(6 * 4 * 4, 12, bias=True), LIF(v_threshold=0.1), SeqLinear(12, 5, bias=True),
                        IF(v_threshold=0.2))
    fg = FlatGraph(export_graph(net, (2, 8, 8)))
    x = torch.rand(6, 2, 8, 8)
    low = lower(fg, value_ranges(fg, [x.unsqueeze(0).expand(6, *x.shape)], 6), 6)
    write_netx(low, tmp_path / "m.net")
    grid = to_netx_grid(low)
    pg = read_netx(tmp_path / "m.net")
    assert pg.T == 6 and tuple(pg.input_shape) == (2, 8, 8)
    _, want = FakeQuantModel(grid).run(x, keep=True)
    got = Executor(pg).run(x, keep=True).values
    layers = netx_chain(grid)
    assert len(layers) == len(pg.metadata["neuron_layers"]) == 3
    for layer, name in zip(layers, pg.metadata["neuron_layers"], strict=True):
        theirs = want[layer["neuron"].name].double()
        assert theirs.sum() > 0, f"{name} is silent: the comparison would prove nothing"
        assert torch.equal(got[name].double(), theirs), name
