"""Integer lowering and the fake-quant model: hand-worked arithmetic and agreement with float."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import sresformer
from exporters.loihi.flatgraph import FlatGraph
from exporters.loihi.lower import lower
from exporters.nir.export import export_graph, model_to_nir
from exporters.quantize.fakequant import FakeQuantModel, decay
from exporters.quantize.ranges import value_ranges
from hw_sim.arith import shift_round
from hw_sim.chips import load_chip
from sresformer.data import open_dataset
from sresformer.layers import SeqConv2d, SeqLinear
from sresformer.neurons import LIF
from testutil import warm_up


def test_decay_truncates_toward_zero_like_loihi():
    x = torch.tensor([5.0, -5.0, 7.0, -7.0, 0.0])
    assert decay(x, 2048, 12).tolist() == [2.0, -2.0, 3.0, -3.0, 0.0]     # |x| * 2048 >> 12
    assert decay(x, 1024, 12).tolist() == [3.0, -3.0, 5.0, -5.0, 0.0]     # |x| * 3072 >> 12
    assert decay(x, 0, 12).tolist() == x.tolist() and decay(x, 4096, 12).abs().sum() == 0


def test_shift_round_half_up():
    acc = torch.tensor([5.0, 6.0, -5.0, -6.0, 7.0])
    assert shift_round(acc, -1).tolist() == [3.0, 3.0, -2.0, -3.0, 4.0]   # floor((a + 1) / 2)
    assert shift_round(acc, 2).tolist() == [20.0, 24.0, -20.0, -24.0, 28.0]


def _tiny(weight, bias=None):
    net = nn.Sequential(SeqConv2d(1, 2, 1, bias=bias is not None), LIF(), nn.Flatten(), SeqLinear(8, 3))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(weight).view(2, 1, 1, 1))
        if bias is not None:
            net[0].bias.copy_(torch.tensor(bias))
        net[3].weight.copy_(torch.tensor([[0.5, -0.25] * 4, [0.25, 0.5] * 4, [-0.5, 0.125] * 4]))
    return net


def test_fake_quant_is_exact_when_nothing_rounds():
    # power-of-two weights and inputs on a 1/8 grid: every float value is an exact integer
    # multiple of its unit, so the integer model must give the float spikes and logits exactly
    fg = FlatGraph(export_graph(_tiny([1.5, -0.75]), (1, 2, 2)))
    x = torch.randint(-8, 9, (6, 1, 2, 2)).float() / 8
    # the tiny values take a fine unit: shift 15, above Loihi's weight exponent (13 with the input
    # alignment) with mantissas that cannot take it; this test is about rounding, so a wider exponent
    wide = dataclasses.replace(load_chip("loihi2"), name="wide-exponent", weight_exp_max=16)
    pg = lower(fg, value_ranges(fg, [x], T=4), T=4, chip=wide)
    fq = FakeQuantModel(pg)
    float_out = fg.run(x.unsqueeze(0).expand(4, *x.shape))
    torch.testing.assert_close(fq.forward_steps(x), float_out.float(), rtol=0, atol=0)


def test_lif_threshold_and_weights_hand_checked():
    fg = FlatGraph(export_graph(_tiny([1.5, -0.75]), (1, 2, 2)))
    x = torch.full((1, 1, 2, 2), 1.0)
    pg = lower(fg, value_ranges(fg, [x], T=2), T=2)
    conv, lif = pg.processes["0"], pg.processes["1"]
    e = conv.exponent
    # the conv writes currents in units of 2**e; LIF(tau=2): k r = 1/2, vth = 1 / (2**e / 2)
    assert int(lif.params["vth"].ravel()[0]) == 2 ** (1 - e)
    assert lif.attrs.dv == 2048
    # graded input pixels (unit 2**e_in): W = mantissa * 2**shift * 2**(e - e_in)
    e_in = pg.processes["input"].exponent
    w = conv.params["weight"].ravel() * 2.0 ** (conv.attrs.shift + e - e_in)
    np.testing.assert_allclose(w, [1.5, -0.75])


@pytest.fixture(scope="module")
def nano_digits():
    data = open_dataset("digits", augment=False)
    xtr = torch.stack([data.train[i][0] for i in range(64)])
    xte = torch.stack([data.test[i][0] for i in range(64)])
    model = warm_up(sresformer.create_model("spikingresformer_nano"), xtr, steps=3)
    return model, xtr, xte


def test_nano_fake_quant_tracks_float(nano_digits):
    model, xtr, xte = nano_digits
    fg = FlatGraph(model_to_nir(model))
    pg = lower(fg, value_ranges(fg, [xtr], T=4), T=4)
    fq = FakeQuantModel(pg)
    with torch.no_grad():
        ref, got = model(xte), fq(xte)
    assert (ref.argmax(1) == got.argmax(1)).float().mean() >= 0.9
    assert torch.allclose(ref, got, atol=0.05 * ref.abs().max())
    # DSSA's c1, c2 are folded into thresholds: no synapse multiplies a graded value but the readout
    graded = [p.name for p in pg if p.kind == "synapse" and p.attrs.graded_input and not p.static]
    assert graded == ["classifier"]


def test_unsupported_node_is_refused():
    import nir

    from exporters.nir.convention import NIRError
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([4])), "li": nir.LI(tau=np.ones(4), r=np.ones(4),
                                                                            v_leak=np.zeros(4)),
                            "output": nir.Output(np.array([4]))}, edges=[("input", "li"), ("li", "output")])
    fg = FlatGraph(g)
    with pytest.raises(NIRError, match="'li'.*LI"):
        lower(fg, value_ranges(fg, [torch.randn(2, 4)], T=2), T=2)


def test_the_chip_file_sets_weight_and_decay_widths(tmp_path):
    """A chip with 4-bit weights and 10-bit decays: the lowering stores 4-bit mantissas (4 <= max |w| <= 7)
    and decays in 1/1024 (LIF tau = 2: dv = 512, du = 1024, a current that lasts one step), the
    artifact records and checks them, and fake-quant and the executor still agree bit for bit."""
    import dataclasses

    from hw_sim.artifact import read_artifact, write_artifact
    from hw_sim.chips import load_chip
    from hw_sim.executor import Executor
    from hw_sim.mapping import map_graph

    # (shift 17 at 4-bit mantissas: a weight exponent wider than Loihi's, see test_fake_quant_is_exact...)
    chip = dataclasses.replace(load_chip("loihi2"), name="narrow", weight_bits=4, decay_bits=10, weight_exp_max=16)
    fg = FlatGraph(export_graph(_tiny([1.5, -0.7]), (1, 2, 2)))
    x = torch.rand(6, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * 2
    pg = lower(fg, value_ranges(fg, [x], T=4), T=4, chip=chip)
    syn = [p for p in pg if p.kind == "synapse"]
    neu = [p for p in pg if p.kind == "neuron"]
    # the smallest shift that fits the peak: the largest mantissa needs all 4 bits (4..7)
    assert syn and all(p.attrs.weight_bits == 4 and 4 <= np.abs(p.params["weight"]).max() <= 7 for p in syn)
    assert neu and all((p.attrs.decay_bits, p.attrs.du, p.attrs.dv) == (10, 1024, 512) for p in neu)
    path = tmp_path / "narrow.loihi"
    write_artifact(path, pg, map_graph(pg, chip), {})
    back = read_artifact(path)[0]
    assert {p.name: p.attrs for p in back} == {p.name: p.attrs for p in pg}
    logits, values = FakeQuantModel(back).run(x, keep=True)
    res = Executor(back).run(x, keep=True)
    assert torch.equal(res.logits, logits.to(torch.int64))
    for p in neu:
        assert torch.equal(res.values[p.name].double(), values[p.name].expand_as(res.values[p.name])), p.name


def test_two_neurons_into_a_flatten_simulate(tmp_path):
    """NIR sums a node's inputs: two LIFs feeding a Flatten lower to a sum then a one-source flatten, an artifact
    the reader accepts (``sresformer simulate X.nir``, exit 0, bit-equal to the fake-quant model),
    and the flattened value is the two spike trains' sum."""

    import nir

    from hw_sim.executor import Executor
    from testutil import run_cli_here

    rng = np.random.default_rng(0)

    def lif(vth):
        return nir.LIF(tau=np.full((2, 4, 4), 2e-4), r=np.ones((2, 4, 4)), v_leak=np.zeros((2, 4, 4)),
                       v_threshold=np.full((2, 4, 4), vth))

    nodes = {"input": nir.Input(np.array([1, 4, 4])),
             "a": nir.Conv2d(input_shape=(4, 4), weight=rng.normal(0, 1, (2, 1, 3, 3)).astype(np.float32), stride=1,
                             padding=1, dilation=1, groups=1, bias=np.full(2, 0.3, np.float32)),
             "l1": lif(0.2), "l2": lif(0.4),
             "flat": nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=0, end_dim=-1),
             "fc": nir.Affine(weight=rng.normal(0, 1, (10, 32)).astype(np.float32), bias=np.zeros(10, np.float32)),
             "output": nir.Output(np.array([10]))}
    edges = [("input", "a"), ("a", "l1"), ("a", "l2"), ("l1", "flat"), ("l2", "flat"), ("flat", "fc"),
             ("fc", "output")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-4, "T": 2})
    nir.write(tmp_path / "m.nir", graph)
    r = run_cli_here("simulate", tmp_path / "m.nir", "--data", "synthetic", "--limit", "1")
    assert r.returncode == 0, r.stderr
    assert "agreement  100.00%" in r.stdout
    fg = FlatGraph(graph, dt=1e-4)
    x = torch.rand(2, 1, 4, 4)
    pg = lower(fg, value_ranges(fg, [x.unsqueeze(0).expand(2, *x.shape)], 2), 2)
    v = Executor(pg).run(x, keep=True).values
    both = v["l1"] + v["l2"]
    assert both.sum() > 0, "silent neurons would prove nothing"
    assert torch.equal(v["flat"], both.flatten(2))
