"""Counts in Lava (Spikformer's values): sums of spikes, products of spikes and of a count with spikes, a neuron
reading a count straight (``LIFResetCount``, Lava's LIF without its 6-bit alignments), a sum pool and the
classifier on a count; planned as counts, and spike for spike with our executor in Lava's fixed-point models."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from exporters.lava.grid import lava_grid
from exporters.lava.plan import LavaError, plan_graph
from hw_sim.processes import Process, ProcessGraph
from testutil import ROOT

CONV = {"op": "conv", "weight_bits": 8, "out_bits": 24, "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1),
        "groups": 1}
SHAPE = (2, 1, 2)   # [C, H, W]: d = 2 channels, N = 2 tokens, one head


def _neuron(name, src, vth, dv=0):
    return Process(name, "neuron", [src], SHAPE, params={"vth": np.asarray([vth], np.int64)},
                   attrs={"du": 4096, "dv": dv, "state_bits": 24, "decay_bits": 12})


def _syn(name, src, weight, bias, shift, graded, static=False):
    return Process(name, "synapse", [src], SHAPE, static=static,
                   params={"weight": np.asarray(weight).reshape(2, 2, 1, 1), "bias": np.asarray(bias, np.int64)},
                   attrs={**CONV, "shift": shift, "graded_input": graded})


def _spikformer_graph(T=4, attn_vth=3) -> ProcessGraph:
    """Spikformer's block in miniature: input -> two static stem synapses (host) -> spikes a, b (IF) ->
    add = a + b (a count) -> q (a synapse on the count) -> spikes q -> mm1 = q @ b^T (spikes times spikes) ->
    mm2 = mm1 @ a (a count, held in a sum, times spikes) -> attn (LIF, dv = 2048, reading the count straight, threshold
    ``attn_vth``) -> add2 = add + attn -> sum pool over the tokens -> flatten -> head (dense, shift 5)."""
    procs = [Process("input", "input", [], SHAPE, attrs={"bits": 8}, static=True),
             _syn("stem_a", "input", [[1, 0], [0, 1]], [0, 0], 6, True, static=True),
             _syn("stem_b", "input", [[0, 1], [1, 0]], [64, 0], 6, True, static=True),
             _neuron("a", "stem_a", 64 * 5 + 1),
             _neuron("b", "stem_b", 64 * 6 + 1),
             Process("add", "sum", ["a", "b"], SHAPE, attrs={"out_bits": 24}),
             _syn("q_conv", "add", [[2, 1], [-1, 3]], [64, -64], 7, True),
             _neuron("q", "q_conv", 64 * 2 + 1),
             Process("mm1", "prodmm", [], SHAPE, operands=["q", "b"], attrs={"form": "q@kT", "heads": 1,
                                                                            "out_bits": 24}),
             Process("mm1s", "sum", ["mm1"], SHAPE, attrs={"out_bits": 24}),   # a product is held in a sum
             Process("mm2", "prodmm", [], SHAPE, operands=["mm1s", "a"], attrs={"form": "qk@v", "heads": 1,
                                                                              "out_bits": 24}),
             _neuron("attn", "mm2", attn_vth, dv=2048),
             Process("add2", "sum", ["add", "attn"], SHAPE, attrs={"out_bits": 24}),
             Process("pool", "sumpool", ["add2"], (2, 1, 1), attrs={"kernel": (1, 2), "stride": (1, 2),
                                                                    "padding": (0, 0), "out_bits": 24}),
             Process("flat", "flatten", ["pool"], (2,)),
             Process("head", "synapse", ["flat"], (3,),
                     params={"weight": np.array([[5, -3], [-7, 2], [1, 1]]), "bias": np.array([4, 0, -9])},
                     attrs={"op": "dense", "shift": 5, "graded_input": True, "weight_bits": 8, "out_bits": 24})]
    return ProcessGraph({p.name: p for p in procs}, "head", T, SHAPE)


X = torch.tensor([[[[3.0, 9.0]], [[7.0, 2.0]]], [[[8.0, 1.0]], [[4.0, 12.0]]]])   # two images [2, 1, 2]


def test_spikformer_values_plan_as_counts_and_keep_the_count_neurons_threshold():
    """Sums and products of spikes are counts (our integer in Lava, no offset), the neuron reading one is
    LIFResetCount-bound (``v > vth - 1``) and lava_grid keeps its threshold (3: the 64 k + 1 grid would give 1)
    while it moves the others'; a synaptic value summed with spikes is refused in one line."""
    pg = _spikformer_graph()
    pg.processes["a"].params["vth"] = np.asarray([64 * 5 + 7])
    g = lava_grid(pg)
    assert g.processes["a"].params["vth"].tolist() == [64 * 5 + 1]
    assert g.processes["attn"].params["vth"].tolist() == [3]
    nodes = plan_graph(g)
    assert [k for k, n in nodes.items() if n.count] == ["add", "mm1", "mm1s", "mm2", "add@+5", "add2", "pool", "flat"]
    assert nodes["attn"].params["count"] and nodes["attn"].params["vth"].tolist() == [2] * 4
    assert "readout" in nodes["head"].params and nodes["head"].params["readout"]["scale"] == 1
    bad = _spikformer_graph()
    bad.processes["add"].sources = ["a", "stem_a"]   # spikes + a (host) synaptic value
    with pytest.raises(LavaError, match=r"'add' \(sum\).*with spikes or counts") as e:
        plan_graph(bad)
    assert "\n" not in str(e.value)


def _lif_by_hand(x: np.ndarray, vth: int) -> np.ndarray:
    """Our LIF on integer input ``x [T, ...]``: ``u = x`` (du = 4096), ``v = trunc(v / 2) + u`` (dv = 2048: ``sign(v)
    (|v| 2048 >> 12)``), a spike where ``v >= vth``, then ``v = 0`` there."""
    v, out = np.zeros(x.shape[1:], np.int64), np.zeros_like(x)
    for t in range(x.shape[0]):
        v = np.sign(v) * (np.abs(v) // 2) + x[t]
        out[t] = v >= vth
        v = np.where(out[t] == 1, 0, v)
    return out


def _write(pg, path):
    from hw_sim.artifact import write_artifact
    from hw_sim.chips import load_chip
    from hw_sim.mapping import map_graph

    write_artifact(path, pg, map_graph(pg, load_chip("loihi2")), {})
    return path


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_counts_agree_with_the_executor_in_lavas_models(tmp_path):
    """The miniature block in Lava (GradedVec sums, ProdNeurons, LIFResetCount, the host's readout) equals our
    executor spike for spike and integer for integer on two pipelined images. attn is checked first against a
    LIF written here on the executor's mm2 counts; it fires, and its threshold 3 matters (the 64 k + 1 grid's 1,
    all a 6-bit aligned Lava LIF could hold, gives other spikes)."""
    pytest.importorskip("lava.proc.lif.process", reason="Lava is not installed (bash .ci/install-lava)")
    from exporters.lava.run import compare_lava
    from hw_sim.executor import Executor

    pg = _spikformer_graph()
    v = Executor(pg).run(X, keep=True).values
    mm2 = v["mm2"].numpy().astype(np.int64)   # [T, N, C, H, W]
    assert np.array_equal(_lif_by_hand(mm2, 3), v["attn"].numpy()), "the executor's attn is our LIF on mm2"
    assert not np.array_equal(_lif_by_hand(mm2, 1), v["attn"].numpy())
    assert v["attn"].sum() > 0 and (v["attn"] == 0).any(), "attn must fire, and not everywhere"
    assert int(v["add"].max()) == 2 and int(v["mm2"].max()) >= 2
    r = compare_lava(_write(pg, tmp_path / "counts.loihi"), X)
    assert r["processes"] == 5 and r["spikes"] > 0
    assert r["agreement"] == 1.0 and r["first_mismatch"] is None, r


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_spikformer_nano_runs_in_lava_spike_for_spike(tmp_path):
    """Issue 16: a firing spikformer_nano (T = 2, digits' 32 x 32) exported with --target lava, then
    'simulate --backend lava --limit 1': its residual sums of spikes, q k^T and (q k^T) v products and attn_lif
    on counts, every neuron's spikes and the logits equal to our executor's."""
    pytest.importorskip("lava.proc.lif.process", reason="Lava is not installed (bash .ci/install-lava)")
    from test_spikformer_lowering import firing  # every BN at gamma 2, beta 1.2, warmed up: all layers fire

    import sresformer
    from sresformer.data import open_dataset

    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(16)])
    torch.manual_seed(0)
    model = firing(sresformer.create_model("spikformer_nano", num_classes=10, img_size=32, T=2), x)
    sresformer.save_checkpoint(model, tmp_path / "m.ckpt")
    cli = [sys.executable, "-m", "cli.main"]
    r = subprocess.run([*cli, "export", str(tmp_path / "m.ckpt"), "--target", "lava", "--out", str(tmp_path / "lava"),
                        "--calib-images", "16", "--eval-images", "8"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([*cli, "simulate", str(tmp_path / "lava" / "model.loihi"), "--backend", "lava", "--limit", "1",
                        "--json"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert s["samples"] == 1 and s["processes"] == 20   # 19 neuron layers and the logits
    assert s["spikes"] > 0, "a silent model would agree trivially"
    assert s["agreement"] == 1.0 and s["first_mismatch"] is None, s
