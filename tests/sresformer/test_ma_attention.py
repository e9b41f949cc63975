"""MA-SNN multi-dimensional attention: SpikingJelly's layer, hand computations, training, checkpoints."""

import math

import pytest
import torch

import sresformer
from sresformer.ma_attention import GatedNeuron, MultiDimAttention, parse_attention
from sresformer.sops import count_ops
from testutil import train_step


@pytest.mark.parametrize("spec, gates", [("tcsa", "tcs"), ("csa", "cs"), ("cs", "cs"), ("sc", "cs"), ("ta", "t"),
                                         ("SA", "s"), (None, ""), ("none", "")])
def test_parse_attention(spec, gates):
    assert parse_attention(spec) == gates


@pytest.mark.parametrize("spec", ["x", "cc", "tcsx", "a"])
def test_parse_attention_rejects(spec):
    with pytest.raises(ValueError, match="letters"):
        parse_attention(spec)


def test_sequence_form_equals_spikingjelly():
    """With zero gate biases and squeezes over all T steps, ours is SpikingJelly's MultiDimensionalAttention."""
    sj = pytest.importorskip("spikingjelly.activation_based.layer.attention")
    torch.manual_seed(0)
    T, C = 4, 16
    ref = sj.MultiDimensionalAttention(T, C, reduction_t=2, reduction_c=4, kernel_size=3)
    ours = MultiDimAttention("tcsa", C, T, reduction_t=2, reduction_c=4, kernel_size=3, pool="sequence")
    with torch.no_grad():
        for mine, theirs in ((ours.ta, ref.ta), (ours.ca, ref.ca)):
            mine.w1.copy_(theirs.sharedMLP[0].weight.flatten(1))
            mine.w2.copy_(theirs.sharedMLP[2].weight.flatten(1))
            mine.bias.zero_()
        ours.sa.weight.copy_(ref.sa.conv.weight)
        ours.sa.bias.zero_()
    x = torch.randn(T, 3, C, 5, 5)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)


def _sig(v):
    return 1 / (1 + math.exp(-v))


def test_step_gates_equal_a_hand_computation():
    """Per-step CA then SA on a 2-channel 2x2 map, every sum written out."""
    m = MultiDimAttention("cs", 2, T=2, reduction_c=2, kernel_size=3)
    with torch.no_grad():
        m.ca.w1.copy_(torch.tensor([[0.5, -1.0]]))          # hidden 1
        m.ca.w2.copy_(torch.tensor([[2.0], [-1.0]]))
        m.ca.bias.copy_(torch.tensor([0.1, 0.2]))
        m.sa.weight.zero_()
        m.sa.weight[0, 0, 1, 1] = 1.0    # centre tap of the mean map
        m.sa.weight[0, 1, 1, 2] = 0.5    # right neighbour of the max map
        m.sa.bias.fill_(-0.3)
    x = torch.tensor([[[1.0, 2.0], [3.0, -4.0]], [[0.5, 0.0], [-1.0, 2.5]]])   # [C, H, W]
    seq = torch.stack([x, -x]).unsqueeze(1)                                   # [T=2, B=1, C, H, W]
    out = m(seq)
    for t, xt in enumerate((x, -x)):
        # channel gate
        avg = [float(xt[c].sum()) / 4 for c in range(2)]
        mx = [float(xt[c].max()) for c in range(2)]
        mlp = lambda v: [2.0 * max(0.0, 0.5 * v[0] - v[1]), -1.0 * max(0.0, 0.5 * v[0] - v[1])]  # noqa: E731
        gc = [_sig(a + b + bias) for a, b, bias in zip(mlp(avg), mlp(mx), (0.1, 0.2), strict=True)]
        x1 = [[[float(xt[c, i, j]) * gc[c] for j in range(2)] for i in range(2)] for c in range(2)]
        # spatial gate: mean and max over channels, then the two taps
        mean = [[(x1[0][i][j] + x1[1][i][j]) / 2 for j in range(2)] for i in range(2)]
        mxs = [[max(x1[0][i][j], x1[1][i][j]) for j in range(2)] for i in range(2)]
        for c in range(2):
            for i in range(2):
                for j in range(2):
                    right = mxs[i][j + 1] if j + 1 < 2 else 0.0
                    gs = _sig(mean[i][j] + 0.5 * right - 0.3)
                    want = max(0.0, x1[c][i][j] * gs)
                    assert float(out[t, 0, c, i, j].detach()) == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_shapes_and_gradients():
    m = MultiDimAttention("tcs", 8, T=4, reduction_c=4)
    x = torch.randn(4, 2, 8, 5, 5, requires_grad=True)
    out = m(x)
    assert out.shape == x.shape
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert not m.causal and MultiDimAttention("cs", 8, 4).causal
    assert not MultiDimAttention("cs", 8, 4, pool="sequence").causal


def test_step_gates_are_causal():
    """Per-step CA/SA: changing a later step leaves earlier outputs unchanged; TA does not."""
    torch.manual_seed(1)
    x = torch.randn(4, 1, 8, 4, 4)
    y = x.clone()
    y[3] += 5
    cs, tcs = MultiDimAttention("cs", 8, 4, reduction_c=4), MultiDimAttention("tcs", 8, 4, reduction_c=4)
    with torch.no_grad():   # a TA whose hidden units see every step
        tcs.ta.w1.fill_(0.1)
        tcs.ta.w2.fill_(0.1)
    assert torch.equal(cs(x)[:3], cs(y)[:3])
    assert not torch.equal(tcs(x)[:3], tcs(y)[:3])


@pytest.mark.parametrize("name", ["spikingresformer_nano_cs", "spikingresformer_nano_tcsa"])
def test_zoo_model_with_attention_trains_a_step(name):
    model, x, out = train_step(name, 32)
    assert out.shape == (2, 5)
    gates = [m for m in model.modules() if isinstance(m, MultiDimAttention)]
    assert len(gates) == 6   # a DSSA and a GWSFFN per stage
    for g in gates:   # every gate parameter is in the graph (a dead ReLU unit may give an exact zero)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())
    assert sum(float(g.ca.w1.grad.abs().sum()) for g in gates) > 0
    assert all(float(g.sa.weight.grad.abs().sum()) > 0 for g in gates)


def test_create_model_attention_kwarg_and_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = sresformer.create_model("spikingresformer_nano", attention="cs")
    assert model.model_kwargs["attention"] == "cs"
    assert isinstance(model.layers[0][0].activation_in, GatedNeuron)
    assert isinstance(model.layers[0][1].up[0], GatedNeuron)
    x = torch.randn(4, 3, 32, 32)
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    sresformer.save_checkpoint(model, tmp_path / "m.ckpt")
    back = sresformer.load_checkpoint(tmp_path / "m.ckpt")
    assert any(k.endswith("attn.ca.w1") for k in back.state_dict())
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


def test_gate_op_counts_by_hand():
    """C=8, 4x4, hidden 2, k=3: CA MLP 2 paths x (8x2 + 2x8), conv 2 maps x 9 taps x 16, one multiply per element."""
    m = MultiDimAttention("cs", 8, T=1, reduction_c=4, kernel_size=3)
    n = 8 * 4 * 4
    ca_mac = 2 * (8 * 2 + 2 * 8) + n
    sa_mac = 2 * 9 * 16 + n
    assert m.gate_ops((8, 4, 4)) == {"mac": ca_mac + sa_mac, "ac": 2 * n + 2 * n}


def test_op_counter_charges_gates_per_step_and_static_ones_once():
    torch.manual_seed(0)
    model = sresformer.create_model("spikingresformer_nano", attention="cs", T=2)
    model.train()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        model(x)
    layers = {r.name: r for r in count_ops(model, [x])}
    first = layers["layers.0.0.activation_in.attn"]            # reads the static stem output: once
    ffn = layers["layers.0.1.up.0.attn"]                       # reads the residual stream: every step
    ops = model.layers[0][0].activation_in.attn.gate_ops((32, 8, 8))
    assert first.kind == "gate" and first.mac == ops["mac"] * 3 and first.ac == ops["ac"] * 3
    assert ffn.mac == ops["mac"] * 3 * 2
