"""Random spike masking (``gate``, Masked Spiking Transformer) in Lava: a ProdNeuron of the spikes and the model's
keep mask (a RingBuffer rotated by the gate's delay), on a hand-sized graph and on a masked nano SpikingResformer."""

import json

import numpy as np
import pytest
import torch

from hw_sim.processes import Process, ProcessGraph


def _needs_lava():
    pytest.importorskip("lava.proc.lif.process", reason="Lava is not installed (bash .ci/install-lava)")


def _gated(T=4, ratio=0.5) -> ProcessGraph:
    """input [6] -> syn (identity, shift 6) -> n1 (IF, fires every step its input reaches 129) -> gate -> syn2
    (identity, shift 6) -> n2 (IF, threshold 1: it fires at each spike the gate lets through, one step later)."""
    eye = np.eye(6, dtype=np.int64)

    def syn(name, src, graded):
        return Process(name, "synapse", [src], (6,), params={"weight": eye, "bias": np.zeros(6, np.int64)},
                       attrs={"op": "dense", "shift": 6, "graded_input": graded, "weight_bits": 8, "out_bits": 24},
                       static=name == "syn")

    def neuron(name, src, vth):
        return Process(name, "neuron", [src], (6,), params={"vth": np.asarray([vth], np.int64)},
                       attrs={"du": 4096, "dv": 0, "state_bits": 24, "decay_bits": 12})

    gate = Process("mask", "gate", ["n1"], (6,), attrs={"ratio": ratio, "seed": 7, "gate_id": 1})
    procs = [Process("input", "input", [], (6,), attrs={"bits": 8}, static=True), syn("syn", "input", True),
             neuron("n1", "syn", 129), gate, syn("syn2", "mask", False), neuron("n2", "syn2", 1)]
    return ProcessGraph({p.name: p for p in procs}, "n2", T, (6,))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_lava_gate_drops_exactly_the_masked_spikes(tmp_path):
    """n1 fires at every step (input 3: v = 192 >= 129 each step); the gate at delay 1 keeps keep_mask's spikes,
    so n2's spikes depend on which (t, i) pass: Lava's equal ours on two pipelined images."""
    _needs_lava()
    from test_lava_graph import _write

    from exporters.lava.plan import plan_graph
    from exporters.lava.run import compare_lava
    from hw_sim.executor import Executor
    from sresformer.spike_gate import keep_mask

    pg = _gated()
    assert plan_graph(pg)["mask"].delay == 1   # a mask not rotated by the delay would be off by one step
    x = torch.tensor([[3.0, 3, 3, 3, 3, 3], [3.0, 0, 3, 0, 3, 3]])
    v = Executor(pg).run(x, keep=True).values
    keep = keep_mask(0.5, 7, 1, pg.T, (6,))
    np.testing.assert_array_equal(v["mask"][:, 0].numpy(), (v["n1"][:, 0].bool() & keep).numpy())   # by hand
    assert v["n1"][:, 0].all() and not v["mask"][:, 0].all() and v["mask"][:, 0].any()
    np.testing.assert_array_equal(v["n2"].numpy(), v["mask"].numpy())   # n2 shows the gate's output
    r = compare_lava(_write(pg, tmp_path / "gate.loihi"), x)
    assert r["processes"] == 2 and r["agreement"] == 1.0 and r["first_mismatch"] is None, r


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_masked_spikingresformer_nano_runs_in_lava_spike_for_spike(tmp_path):
    """export --spike-mask 0.25 --target lava (three gates on DSSA's inputs), then simulate --backend lava --limit 1:
    every neuron's spikes and the logits equal the executor's, and on that image the gates drop spikes."""
    _needs_lava()
    from hw_sim.artifact import read_artifact
    from hw_sim.executor import Executor
    from hw_sim.simulate import open_test_data
    from testutil import lively_nano_checkpoint, run_cli

    ckpt = lively_nano_checkpoint(tmp_path, seed=0)
    out = tmp_path / "lava"
    r = run_cli("export", ckpt, "--target", "lava", "--spike-mask", "0.25", "--out", out, "--calib-images", 16,
                "--eval-images", 8)
    assert r.returncode == 0, r.stderr[-2000:]
    pg = read_artifact(str(out / "model.loihi"))[0]
    gates = [p for p in pg if p.kind == "gate"]
    assert len(gates) == 3
    data, _ = open_test_data(pg, "digits", 1)
    v = Executor(pg).run(data[0][0][None], keep=True).values
    assert all((v[g.name] != v[g.sources[0]]).any() for g in gates), "a gate that drops nothing proves nothing"
    r = run_cli("simulate", out / "model.loihi", "--backend", "lava", "--limit", 1, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert s["samples"] == 1 and s["processes"] == 21 and s["spikes"] > 0
    assert s["agreement"] == 1.0 and s["first_mismatch"] is None, s
