"""lava-dl netx import: netx's integers as read by h5py, Lava's own weight arithmetic, refusals,
and spikes equal to Lava's bit-accurate netx simulation."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

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
            assert int(neu.params["vth"][0]) == 64 * int(n["vThMant"][()]) + 1   # v > 64 vThMant  <=>  v >= 64 vThMant + 1
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
