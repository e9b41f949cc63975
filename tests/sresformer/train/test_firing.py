"""Firing rates against hand counts: a tiny module with known spikes, and the nano model's hooks."""

import pytest
import torch
from torch import nn

import sresformer
from sresformer.firing import FiringRecorder, measure_firing_rates
from sresformer.layers import SpikingMatmul
from sresformer.neurons import LIF


class Tiny(nn.Module):
    """x [T, B, 4]: spikes s = LIF(x) feed ``fc`` directly and ``fc_view`` through a view;
    ``real`` reads x itself; ``mm`` multiplies a real left operand with the spikes."""

    def __init__(self):
        super().__init__()
        self.lif = LIF()
        self.fc = nn.Linear(4, 3)
        self.fc_view = nn.Linear(8, 2)
        self.real = nn.Linear(4, 4)
        self.mm = SpikingMatmul("r")

    def forward(self, x):
        s = self.lif(x)
        a = self.fc(s)
        b = self.fc_view(s.reshape(s.shape[0], -1, 8))
        r = self.real(x)
        m = self.mm(r.transpose(-1, -2), s)
        return a.sum() + b.sum() + m.sum()


def test_tiny_module_rates_equal_hand_counts():
    torch.manual_seed(0)
    model = Tiny()
    batches = [torch.randn(2, 4, 4) * 2, torch.randn(2, 6, 4) * 2]  # different batch sizes
    spikes = [LIF()(x) for x in batches]
    nonzero = sum(int((s != 0).sum()) for s in spikes)
    total = sum(s.numel() for s in spikes)
    rates = measure_firing_rates(model, batches)
    assert set(rates) == {"fc", "fc_view", "mm"}          # `real` reads the input, not spikes
    for name in ("fc", "fc_view", "mm"):
        assert rates[name] == pytest.approx(nonzero / total, abs=1e-15)
    assert 0 < nonzero < total


def test_binary_valued_input_that_is_not_spikes_is_not_counted():
    model = Tiny()
    with FiringRecorder(model) as rec:
        model.real(torch.ones(2, 4))  # 0/1 values, but no neuron produced them
    assert rec.rates() == {}


def test_left_and_both_operands():
    left, right = (torch.rand(2, 3, 4) > 0.5).float(), torch.randn(2, 4, 5)
    for spike, expect in (("l", (left != 0).float().mean()),
                          ("both", ((left != 0).sum() + (right != 0).sum()) / (left.numel() + right.numel()))):
        mm = SpikingMatmul(spike)
        with FiringRecorder(mm) as rec:
            mm(left, right)
        assert rec.rates()[""] == pytest.approx(float(expect))


def test_nano_rates_match_neuron_hooks():
    """Each conv's rate equals the rate of the LIF that feeds it, counted by an independent hook."""
    from testutil import warm_up

    torch.manual_seed(0)
    model = sresformer.create_model("spikingresformer_nano")
    x = torch.randn(6, 3, 32, 32)
    warm_up(model, x)
    counted = {}

    def count(name):
        def hook(m, args, out):
            nz, tot = counted.get(name, (0, 0))
            counted[name] = (nz + int((out != 0).sum()), tot + out.numel())
        return hook

    feeders = {"layers.0.1.up.1": "layers.0.1.up.0", "layers.1.0.conv": "layers.1.0.activation",
               "layers.0.0.W": "layers.0.0.activation_in", "layers.2.1.matmul2": "layers.2.1.activation_attn",
               "layers.0.0.matmul1": "layers.0.0.activation_in", "layers.0.0.Wproj": "layers.0.0.activation_out"}
    mods = dict(model.named_modules())
    handles = [mods[f].register_forward_hook(count(f)) for f in set(feeders.values())]
    rates = measure_firing_rates(model, [(x[:4], None), (x[4:], None)])
    for h in handles:
        h.remove()
    for layer, feeder in feeders.items():
        nz, tot = counted[feeder]
        assert rates[layer] == pytest.approx(nz / tot, abs=1e-12), layer
    convs = {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    matmuls = {n for n, m in model.named_modules() if isinstance(m, SpikingMatmul)}
    assert set(rates) == (convs - {"prologue.0"}) | matmuls   # stem conv and classifier are not listed
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    assert not model.training
