"""A max-pool of spikes in Lava (the window's OR: a unit-weight Sparse into a stateless LIFReset), against a
max-pool written with torch on our executor's spikes and against the executor, spike for spike."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hw_sim.processes import Process, ProcessGraph

CONV = {"op": "conv", "weight_bits": 8, "out_bits": 24, "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1),
        "groups": 1, "shift": 6}


def _pooled(T=4) -> ProcessGraph:
    """input [2, 5, 5] -> 1x1 identity conv (shift 6) -> n1 (IF, 129: input 1, 2, 3 fire every 3rd, 2nd, step)
    -> maxpool 3 x 3, stride 2, padding 1 -> [2, 3, 3] -> 1x1 identity conv -> n2 (threshold 1: n2 fires exactly
    where the pool's output is 1, so the pool is compared through it) -> flatten (the output)."""
    eye = np.eye(2, dtype=np.int64).reshape(2, 2, 1, 1)

    def conv(name, src, shape, graded):
        return Process(name, "synapse", [src], shape, params={"weight": eye, "bias": np.zeros(2, np.int64)},
                       attrs={**CONV, "graded_input": graded}, static=name == "syn")

    def neuron(name, src, shape, vth):
        return Process(name, "neuron", [src], shape, params={"vth": np.asarray([vth], np.int64)},
                       attrs={"du": 4096, "dv": 0, "state_bits": 24, "decay_bits": 12})

    procs = [Process("input", "input", [], (2, 5, 5), attrs={"bits": 8}, static=True),
             conv("syn", "input", (2, 5, 5), True), neuron("n1", "syn", (2, 5, 5), 129),
             Process("pool", "maxpool", ["n1"], (2, 3, 3), attrs={"kernel": (3, 3), "stride": (2, 2),
                                                                  "padding": (1, 1)}),
             conv("syn2", "pool", (2, 3, 3), False), neuron("n2", "syn2", (2, 3, 3), 1),
             Process("out", "flatten", ["n2"], (18,))]
    return ProcessGraph({p.name: p for p in procs}, "out", T, (2, 5, 5))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_lava_maxpool_of_spikes_agrees_with_torch_and_the_executor(tmp_path):
    pytest.importorskip("lava.proc.lif.process", reason="Lava is not installed (bash .ci/install-lava)")
    from test_lava_graph import _write

    from exporters.lava.plan import plan_graph
    from exporters.lava.run import compare_lava
    from hw_sim.executor import Executor

    pg = _pooled()
    assert plan_graph(pg)["pool"].lava == "or"
    x = torch.from_numpy(np.random.default_rng(1).choice([0, 0, 0, 1, 2], (2, 2, 5, 5))).double()
    v = Executor(pg).run(x, keep=True).values
    s = v["n1"].double()                                                   # [T, N, 2, 5, 5]
    pooled = F.max_pool2d(s.flatten(0, 1), 3, 2, 1).view(v["pool"].shape)   # torch's max-pool, by hand
    np.testing.assert_array_equal(v["pool"].numpy(), pooled.numpy())
    np.testing.assert_array_equal(v["n2"].numpy(), v["pool"].numpy())
    assert 0 < pooled.mean() < 1 and (pooled != pooled[:1]).any(), "the pool must vary, or an OR would not show"
    r = compare_lava(_write(pg, tmp_path / "pool.loihi"), x)
    assert r["processes"] == 3 and r["agreement"] == 1.0 and r["first_mismatch"] is None, r
