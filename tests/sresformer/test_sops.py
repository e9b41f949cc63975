"""Exact SOP counts: hand counts on small layers, and SpikingJelly's SynOpCounter on a whole model."""

import pytest
import torch
from torch import nn

import sresformer
from sresformer.layers import SeqConv2d, SeqLinear, SpikingMatmul
from sresformer.sops import OpCounter, conv_fanout_count, count_ops
from testutil import warm_up


def test_conv_fanout_hand_count():
    # 3x3 'same' conv on a 3x3 map, 2 output channels: a corner spike reaches 4 outputs,
    # an edge spike 6, the centre 9 (per output channel)
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 0, 0] = 1
    assert conv_fanout_count(x, conv) == 4 * 2
    x[0, 0, 0, 1] = 1
    assert conv_fanout_count(x, conv) == (4 + 6) * 2
    x[0, 0, 1, 1] = 1
    assert conv_fanout_count(x, conv) == (4 + 6 + 9) * 2


def test_strided_grouped_conv_hand_count():
    # stride 2, kernel 2, no padding on 4x4: every input reaches exactly one output position;
    # 4 channels in 2 groups, 6 outputs -> 3 outputs per group
    conv = nn.Conv2d(4, 6, 2, stride=2, groups=2, bias=False)
    x = (torch.rand(1, 4, 4, 4) > 0.5).float()
    assert conv_fanout_count(x, conv) == int(x.sum()) * 3


def test_counter_on_layers_hand_count():
    seq = nn.Module()
    seq.conv = SeqConv2d(2, 3, 1)
    seq.fc = SeqLinear(4, 5)
    seq.mm = SpikingMatmul("r")
    s = torch.zeros(2, 1, 2, 2, 2)
    s[0, 0, 0, 0, 0] = 1
    s[1, 0, 1, 1, 1] = 1
    with OpCounter(seq) as c:
        seq.conv(s)                                   # 2 spikes x 3 outputs
        seq.fc(torch.tensor([[[1.0, 0, 0, 1]]]))      # binary: 2 x 5
        seq.fc(torch.tensor([[[0.5, 0, 0, 1]]]))      # real: 2 non-zero values x 5 MACs (zeros are not sent)
        y = torch.randn(2, 1, 3, 4)                   # [T, B, M=3, K=4]
        a = torch.zeros(2, 1, 4, 6)
        a[0, 0, 1, 2] = a[1, 0, 3, 5] = a[1, 0, 0, 0] = 1
        seq.mm(y, a)                                  # 3 spikes x M=3
    L = c.layers
    assert L["conv"].ac == 6 and L["conv"].firing_rate == pytest.approx(2 / 16)
    assert L["fc"].ac == 10 and L["fc"].mac == 10 and L["fc"].dense_macs == 40 and not L["fc"].binary_input
    assert L["mm"].ac == 9


def test_matches_spikingjelly_synop_counter():
    sj = pytest.importorskip("spikingjelly.activation_based.op_counter",
                             reason="SpikingJelly's SynOpCounter is the independent counter (test extra)")
    model = warm_up(sresformer.create_model("spikingresformer_nano"), torch.randn(8, 3, 32, 32))
    x = torch.randn(3, 3, 32, 32)
    ours = count_ops(model, [x])
    total_ac = sum(r.ac for r in ours)
    counter = sj.SynOpCounter()
    with torch.no_grad(), sj.DispatchCounterMode([counter]):
        model(x)
    # SpikingJelly counts spike-driven conv/mm/bmm work: exactly our ACs (the stem and the
    # classifier read real values: MACs, not SOPs, in both)
    assert total_ac > 0
    assert counter.get_total() == total_ac
