"""The executor against the fake-quant torch model (an independent implementation of the same
integer semantics): spikes of every neuron process and logits equal bit for bit; layer counts
against counts computed a different way (forward convs of the spike masks, sresformer.sops)."""

import numpy as np
import pytest
import torch
from torch import nn

import sresformer
from hw_sim.artifact import read_artifact
from exporters.nir.export import export_graph, write_graph
from hw_sim.processes import Process, ProcessGraph
from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.counters import Counter, CountPlan
from hw_sim.executor import Executor, exact_dtype
from sresformer.data import open_dataset
from sresformer.layers import SeqConv2d, SeqLinear
from sresformer.neurons import LIF
from sresformer.sops import conv_fanout_count

from testutil import export_small, lively, lively_nano_artifact, synapse_ops_by_hand


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    # livelier than random init, so deep layers fire and send messages
    return lively_nano_artifact(tmp_path_factory.mktemp("nano"))


def check_equal(pg, x):
    """Executor vs fake-quant: logits and every process's values; returns the executor result."""
    res = Executor(pg).run(x, keep=True)
    ref_logits, ref = FakeQuantModel(pg).run(x, keep=True)
    assert torch.equal(res.logits.double(), ref_logits.expand(res.logits.shape))
    for name, p in pg.processes.items():
        mine = res.values[name].double()
        assert torch.equal(mine, ref[name].expand(mine.shape)), name
    return res


def test_nano_bit_equal_to_fake_quant(nano):
    pg, _, _ = read_artifact(nano)
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.test[i][0] for i in range(6)])
    g = torch.Generator().manual_seed(3)
    noisy = torch.randn(3, 3, 32, 32, generator=g) * 3            # saturating input pixels
    res = check_equal(pg, torch.cat([x, noisy]))
    rates = [float(res.values[n].mean()) for n, p in pg.processes.items() if p.kind == "neuron"]
    assert sum(r > 0.01 for r in rates) >= len(rates) // 2, rates   # a test on a silent net proves little
    assert len(set(res.logits.sum(0).argmax(1).tolist())) >= 1


def test_dtype_choice_follows_the_bound():
    assert exact_dtype(2 ** 24 - 1) == torch.float32 and exact_dtype(2 ** 24) == torch.float64
    with pytest.raises(OverflowError):
        exact_dtype(2 ** 53)


def test_nano_counts_against_independent_counts(nano):
    pg, mapping, _ = read_artifact(nano)
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.test[i][0] for i in range(4)])
    counter = Counter(CountPlan(pg, mapping), pg.T, 4)
    res = Executor(pg).run(x, hook=counter, keep=True)
    layers = counter.counts.layers
    for name, p in pg.processes.items():
        if p.kind == "synapse" and not p.static:
            got = layers[name]["mac" if p.attrs.graded_input else "ac"]
            assert got == synapse_ops_by_hand(p, res.values), name
        elif p.kind == "dsmm":   # every spike adds one column of the dynamic operand
            y = pg.processes[p.operands[0]]
            heads = p.attrs.heads
            col = int(np.prod(y.out_shape[1:])) if p.attrs.form == "y1T@s" else y.out_shape[0] // (2 * heads)
            assert layers[name]["ac"] == float((res.values[p.operands[1]] != 0).sum()) * col, name
    core = counter.counts.core
    assert float(core["ac"].sum()) == sum(v["ac"] for n, v in layers.items() if not pg.processes[n].static)
    assert float(core["spikes"].sum()) == sum(float(res.values[n].sum()) for n, p in pg.processes.items()
                                              if p.kind == "neuron")
    # every compartment of every group is updated once per step, actively or idly
    total = (core["active"] + core["idle"]).sum((0, 2))
    assert torch.all(total == pg.T * sum(g.size for g in mapping.groups.values()))
    # the stem runs once per inference on the embedded processor
    assert float(counter.counts.embedded["mac"].sum()) == layers["prologue.0"]["mac"] > 0


class ToyNet(nn.Module):
    """A third-party style spiking CNN: conv, LIF, strided grouped conv, LIF, flatten, linear."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.c1, self.c2 = SeqConv2d(2, 4, 3, padding=1, bias=False), SeqConv2d(4, 6, 3, 2, 1, groups=2, bias=False)
        self.fc = SeqLinear(6 * 4 * 4, 10)
        with torch.no_grad():   # magnitudes in [0.5, 1]: no mantissa rounds to zero, so every tap is stored
            for m in (self.c1, self.c2, self.fc):
                w = torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5
                m.weight.copy_(w * torch.where(torch.rand(w.shape, generator=g) < 0.3, -1.0, 1.0))
            self.c1.weight.mul_(1.5)

    def chain(self):
        return nn.Sequential(self.c1, LIF(), self.c2, LIF(), nn.Flatten(), self.fc)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    write_graph(export_graph(ToyNet().chain(), (2, 8, 8)), d / "toy.nir")
    return export_small(d / "toy.nir", d / "toy.loihi", calib_data="digits", T=4)


def test_nir_graph_bit_equal_and_sops(toy):
    pg, mapping, _ = read_artifact(toy)
    data = open_dataset("digits", img_size=8, in_channels=2, augment=False)
    x = torch.stack([data.test[i][0] for i in range(8)]) * 2
    res = check_equal(pg, x)
    counter = Counter(CountPlan(pg, mapping), pg.T, 8)
    Executor(pg).run(x, hook=counter)
    convs = [p for p in pg if p.kind == "synapse" and p.attrs.op == "conv" and not p.attrs.graded_input]
    assert convs, "the toy graph lost its spiking conv"
    for p in convs:   # sresformer.sops' fan-out counter on the same spikes (all weights stored)
        spikes = res.values[p.sources[0]].flatten(0, 1)
        conv = nn.Conv2d(spikes.shape[1], p.out_shape[0], p.params["weight"].shape[-1], p.attrs.stride,
                         p.attrs.padding, groups=p.attrs.groups)
        assert counter.counts.layers[p.name]["ac"] == conv_fanout_count(spikes, conv) > 0


def test_ti_at_32_bit_equal(tmp_path):
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(8)])
    model = lively(sresformer.create_model("spikingresformer_ti", img_size=32), x)
    sresformer.save_checkpoint(model, tmp_path / "ti.ckpt")
    pg, mapping, _ = read_artifact(export_small(tmp_path / "ti.ckpt", tmp_path / "ti.loihi"))
    res = check_equal(pg, torch.stack([data.test[i][0] for i in range(3)]))
    assert any(float(res.values[n].mean()) > 0.01 for n, p in pg.processes.items()
               if p.kind == "neuron" and n.startswith("layers.2."))   # the last stage fires too


def test_nano_message_counts_equal_a_gather_per_event(nano):
    """Per-core message counts (one batched product per sender over all steps) equal the sum, event by
    event, of each sending element's table row into its core and step (two ways of one sum)."""
    pg, mapping, _ = read_artifact(nano)
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.test[i][0] for i in range(3)])
    plan = CountPlan(pg, mapping)
    counter = Counter(plan, pg.T, 3)
    res = Executor(pg).run(x, hook=counter, keep=True)
    want = torch.zeros(pg.T, 3, plan.ncores, 4, dtype=torch.float64)
    senders = 0
    for name, table in plan.send.items():
        g = plan.home_group(name)
        if g is None:
            continue
        out = res.values[name]
        events = torch.nonzero((out != 0).reshape(out.shape[0], out.shape[1], -1))
        t, b, i = events.unbind(1)
        rows = table.reshape(-1, 4)[i].double()
        want.index_put_((t, b, g.first_core + i // g.chunk), rows, accumulate=True)
        senders += 1
    assert senders > 3 and want[..., 1].sum() > 0
    got = counter.counts.core
    assert torch.equal(got["in_tile"], want[..., 0])
    assert torch.equal(got["msgs"], want[..., 0] + want[..., 1])
    assert torch.equal(got["hops_ew"], want[..., 2])
    assert torch.equal(got["hops_ns"], want[..., 3])


@pytest.mark.parametrize("fraction", [0.0, 1.01])
def test_nano_live_channel_gather_bit_equal(nano, monkeypatch, fraction):
    """Synapses computed on live input channels only (always / never) stay bit-equal to fake-quant,
    on digits and on an input with silent channels (blank image: most layers see no spikes)."""
    from hw_sim import executor

    monkeypatch.setattr(executor, "LIVE_FRACTION", fraction)
    pg, _, _ = read_artifact(nano)
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.test[i][0] for i in range(2)] + [torch.zeros(3, 32, 32)])
    check_equal(pg, x)
    check_equal(pg, torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("du, dv", [(4096, 2048), (1024, 1024), (0, 2048), (2048, 0), (1000, 3000)])
def test_every_decay_and_saturation_bit_equal(du, dv):
    """Current and voltage decays (none, dyadic, non-dyadic, a current that persists or not) with a
    narrow 12-bit membrane: the executor's in-place neuron loop equals fake-quant spike for spike."""
    attrs = {"dv": dv, "du": du, "state_bits": 12, "decay_bits": 12}
    w = np.random.default_rng(0).integers(-20, 20, size=(6, 1, 3, 3))
    conv = {"op": "conv", "stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 1, "shift": 0,
            "graded_input": False, "weight_bits": 8}
    procs = [Process("input", "input", [], (1, 8, 8), attrs={"bits": 8}, static=True),
             Process("n0", "neuron", ["input"], (1, 8, 8), params={"vth": np.array([40])}, attrs=attrs),
             Process("conv", "synapse", ["n0"], (6, 8, 8), params={"weight": w, "bias": np.arange(6) - 3},
                     attrs=conv),
             Process("n1", "neuron", ["conv"], (6, 8, 8), params={"vth": np.array([30])}, attrs=attrs)]
    pg = ProcessGraph({p.name: p for p in procs}, "n1", T=6, input_shape=(1, 8, 8))
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 127
    res = Executor(pg).run(x, keep=True)
    _, ref = FakeQuantModel(pg).run(x, keep=True)
    assert 0.05 < float(res.values["n1"].mean()) < 0.95            # both layers fire, neither saturates to 1
    for name in ("n0", "n1"):
        assert torch.equal(res.values[name].double(), ref[name].double().expand_as(res.values[name])), name
