"""MA attention gates through NIR and the Loihi lowering: round trip, refusal of TA, the attngate process."""


import numpy as np
import pytest
import torch
from torch import nn

import sresformer
from exporters.loihi.flatgraph import FlatGraph
from exporters.loihi.lower import lower
from exporters.nir.convention import ATTENTION_GATE, NIRError, required_extensions
from exporters.nir.export import export, export_graph, model_to_nir
from exporters.nir.load import load_for_eval
from exporters.quantize.fakequant import FakeQuantModel
from exporters.quantize.ranges import value_ranges
from hw_sim.attngate import sigmoid_lut
from hw_sim.chips import load_chip
from hw_sim.counters import Counter, CountPlan
from hw_sim.executor import Executor
from hw_sim.mapping import map_graph
from sresformer.ma_attention import MultiDimAttention
from sresformer.neurons import LIF
from testutil import lively, run_cli_here, synapse_ops_by_hand


@pytest.fixture(scope="module")
def digits():
    from sresformer.data import open_dataset

    data = open_dataset("digits", augment=False)
    return torch.stack([data.train[i][0] for i in range(16)])


def test_nir_round_trip_of_a_cs_model(tmp_path, digits):
    torch.manual_seed(0)
    model = lively(sresformer.create_model("spikingresformer_nano", attention="cs"), digits)
    graph = export(model, tmp_path / "m.nir")
    assert ATTENTION_GATE in required_extensions(graph.metadata)
    sub = graph.nodes["layers.0.1"].nodes["up.0.attn"]
    assert sub.metadata["gates"] == "cs" and sub.metadata["ca_w1"].shape == (2, 32)
    back = load_for_eval(tmp_path / "m.nir")
    with torch.no_grad():
        want, got = model(digits), back(digits)
    # the folded BN rounds differently from conv-then-BN (~1e-7); no spike flips
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_temporal_attention_is_refused_in_one_line(tmp_path, digits):
    torch.manual_seed(0)
    model = lively(sresformer.create_model("spikingresformer_nano", attention="tcsa"), digits)
    with pytest.raises(NIRError, match=r"block layers\.0\.0: temporal attention .*attention='cs'"):
        model_to_nir(model)
    seq = lively(sresformer.create_model("spikingresformer_nano", attention="cs", attention_pool="sequence"), digits)
    with pytest.raises(NIRError, match="attention_pool='step'"):
        model_to_nir(seq)
    sresformer.save_checkpoint(model, tmp_path / "ta.ckpt")
    out = tmp_path / "ta.loihi"
    r = run_cli_here("export", tmp_path / "ta.ckpt", "--target", "loihi", "--out", out)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "temporal attention" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def _gate_chain(seed=0, gates="cs"):
    """conv -> LIF -> 1x1 conv -> MA gate -> LIF: the gate reads a graded value and feeds a neuron."""
    torch.manual_seed(seed)
    attn = MultiDimAttention(gates, 8, T=1, reduction_c=2, kernel_size=3)
    with torch.no_grad():   # gates that vary (the default bias of 4 would leave them nearly all open)
        for p in attn.parameters():
            p.normal_(0, 0.5)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), LIF(), nn.Conv2d(8, 8, 1), attn, LIF())
    net[0].weight.data.mul_(3)
    return export_graph(net, (3, 6, 6)), attn


def _lowered(graph, T=4, calib=None):
    fg = FlatGraph(graph)
    calib = torch.rand(32, 3, 6, 6) if calib is None else calib
    pg = lower(fg, value_ranges(fg, [calib], T), T)
    return fg, pg


@pytest.mark.parametrize("gates", ["c", "s", "cs"])
def test_executor_equals_fakequant_bit_for_bit(gates):
    graph, _ = _gate_chain(1, gates)
    _, pg = _lowered(graph)
    gate = [p for p in pg if p.kind == "attngate"]
    assert len(gate) == 1 and gate[0].attrs.gates == gates
    fq, ex = FakeQuantModel(pg), Executor(pg)
    for x in (torch.rand(16, 3, 6, 6) * 2, torch.rand(4, 16, 3, 6, 6) * 3):   # static images, per-step frames
        ref, vals = fq.run(x, keep=True)
        res = ex.run(x, keep=True)
        assert torch.equal(ref.expand_as(res.logits).to(torch.int64), res.logits)
        got, want = res.values[gate[0].name].double(), vals[gate[0].name].double()
        assert torch.equal(got, want.expand_as(got))
        assert float((got != 0).double().mean()) > 0.2      # the gate passes real values, not all zeros
        levels = torch.unique(got).numel()
        assert levels > 20


def test_integer_gate_tracks_the_float_gate():
    """On the same input, the integer gate read back through its unit is the float gate within 1%.

    (The inputs themselves differ between the float graph and the integer one where an
    upstream spike flips, so the float gate is applied to the integer input read back.)
    """
    graph, attn = _gate_chain(2)
    _, pg = _lowered(graph)
    p = next(p for p in pg if p.kind == "attngate")
    src = pg.processes[p.sources[0]]
    _, vals = FakeQuantModel(pg).run(torch.rand(8, 3, 6, 6), keep=True)
    real_in = vals[src.name] * 2.0 ** src.exponent * float(src.scale)
    real_out = vals[p.name] * 2.0 ** p.exponent * float(p.scale)
    with torch.no_grad():
        want = attn(real_in.float()).double()
    assert float((want != 0).double().mean()) > 0.2
    assert float((real_out - want).abs().max()) < 0.01 * float(want.abs().max())


def test_sigmoid_table():
    lut = sigmoid_lut()
    assert lut.shape == (256,) and lut[0] == 0 and lut[128] == 128 and lut[-1] == 256
    assert np.all(np.diff(lut) >= 0)


def test_gate_runs_on_the_embedded_processor_and_its_macs_are_counted_by_hand():
    graph, attn = _gate_chain(3)
    _, pg = _lowered(graph, T=2)
    mapping = map_graph(pg, load_chip("loihi2"))
    gate = next(p for p in pg if p.kind == "attngate")
    assert gate.name in mapping.host and mapping.placement[gate.name] == "host"
    conv = gate.sources[0]
    assert conv in mapping.groups          # its only reader is on the host: a group of its own
    plan = CountPlan(pg, mapping)
    # the gate is a pipeline stage between the conv group and the neuron group it feeds
    reader = next(q.name for q in pg if gate.name in q.sources)
    assert plan.delay[gate.name] == plan.delay[conv] + 1 and plan.delay[reader] == plan.delay[gate.name] + 1
    B = 5
    counter = Counter(plan, 2, B)
    # pixels that stay non-zero at 8 bits, so the static conv's MACs are the same for every sample
    res = Executor(pg).run(0.5 + torch.rand(B, 3, 6, 6), hook=counter, keep=True)
    # hand count for C=8, 6x6, hidden 4 (8 // 2), k=3, per evaluation and sample
    C, H, W, hidden, k = 8, 6, 6, 4, 3
    n = C * H * W
    mac = (2 * (C * hidden + hidden * C) + n) + (2 * k * k * H * W + n)
    ac = 2 * n + 2 * n
    layer = counter.counts.layers[gate.name]
    assert layer["kind"] == "gate" and layer["mac"] == mac * B * 2 and layer["ac"] == ac * B * 2
    # the embedded processor's MACs: the gate at both steps plus the first conv, static (on the pixels) and run once
    stem = [q.name for q in pg if q.static and q.kind == "synapse"]
    # recounted from the pixels through the stored weights (torch's conv of the masks), not by the counter
    stem_macs = sum(synapse_ops_by_hand(pg.processes[s], res.values) for s in stem) / B
    assert stem == ["0"] and stem_macs > 0
    assert torch.equal(counter.counts.embedded["mac"], torch.full((B,), mac * 2 + stem_macs, dtype=torch.float64))
    # every non-zero value of the conv group is one message to the embedded processor
    g = mapping.groups[conv]
    msgs = counter.counts.core["msgs"][:, :, g.first_core:g.first_core + g.cores].sum()
    assert float(msgs) == float((res.values[conv] != 0).sum())
