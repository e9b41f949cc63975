"""Neuron dynamics against hand-worked sequences and SpikingJelly's nodes (the official code's)."""

import math

import pytest
import torch

from sresformer.neurons import IF, LIF, PLIF, atan_surrogate_grad


def test_lif_hand_sequence():
    # h1 = 0.75; h2 = .75 + (.5 - .75)/2 = .625; h3 = .625 + (2 - .625)/2 = 1.3125 -> spike, v = 0;
    # h4 = 0 + (.2 - 0)/2 = .1
    x = torch.tensor([1.5, 0.5, 2.0, 0.2]).reshape(4, 1)
    assert LIF()(x).flatten().tolist() == [0.0, 0.0, 1.0, 0.0]


def test_lif_threshold_is_inclusive_and_constant_input_one_never_fires():
    # v -> 1 - 2^-t never reaches 1; x = 2 reaches h = 1.0 exactly at t = 1 and fires (>=)
    assert LIF()(torch.ones(6, 1)).sum() == 0
    assert LIF()(torch.full((1, 1), 2.0)).item() == 1.0


def test_if_hand_sequence():
    x = torch.tensor([0.4, 0.4, 0.4, 0.9, -0.5]).reshape(5, 1)
    # v: .4, .8, 1.2 -> spike (0), .9, .4
    assert IF()(x).flatten().tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]


def test_surrogate_gradient_single_step():
    x = torch.tensor([[1.5]], requires_grad=True)
    LIF()(x).sum().backward()
    # dS/dh = 1 / (1 + (pi/2 * 2 * (0.75 - 1))^2), dh/dx = 1/tau = 1/2
    expected = 1.0 / (1.0 + (math.pi * -0.25) ** 2) / 2
    assert x.grad.item() == pytest.approx(expected, rel=1e-6)
    assert atan_surrogate_grad(torch.tensor(0.0)).item() == pytest.approx(1.0)


def test_gradient_flows_through_membrane_but_not_reset():
    # two steps, loss = s2 only. h1 = x1/2 (no spike for x1 = 1), h2 = h1 + (x2 - h1)/2.
    x = torch.tensor([[1.0], [0.0]], requires_grad=True)
    s = LIF()(x)
    s[1].sum().backward()
    h2 = 0.25
    g = 1.0 / (1.0 + (math.pi * (h2 - 1)) ** 2)
    assert x.grad[1].item() == pytest.approx(g / 2, rel=1e-6)
    assert x.grad[0].item() == pytest.approx(g * 0.5 * 0.5, rel=1e-6)


def _reference(node_cls, **kw):
    from spikingjelly.activation_based import neuron, surrogate
    return getattr(neuron, node_cls)(v_threshold=1.0, v_reset=0.0, surrogate_function=surrogate.ATan(),
                                     detach_reset=True, step_mode="m", **kw)


@pytest.mark.parametrize("ours,ref", [
    (LIF, lambda: _reference("LIFNode", tau=2.0, decay_input=True)),
    (IF, lambda: _reference("IFNode")),
    (PLIF, lambda: _reference("ParametricLIFNode", init_tau=2.0, decay_input=True)),
])
def test_matches_spikingjelly_forward_and_backward(ours, ref):
    pytest.importorskip("spikingjelly", reason="SpikingJelly is the independent reference (test extra)")
    torch.manual_seed(1)
    x = (torch.randn(8, 3, 5, 7) * 1.5 + 0.6)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a, b = ours(), ref()
    sa, sb = a(xa), b(xb)
    assert torch.equal(sa, sb)
    assert sa.sum() > 0
    w = torch.randn_like(sa)
    (sa * w).sum().backward()
    (sb * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-6)
    if isinstance(a, PLIF):
        torch.testing.assert_close(a.w.grad, b.w.grad, rtol=1e-4, atol=1e-6)


def test_no_state_leaks_between_calls():
    lif = LIF()
    x = torch.rand(4, 2, 3) * 3
    assert torch.equal(lif(x), lif(x))


def test_plif_tau_property():
    assert PLIF(init_tau=2.0).tau == pytest.approx(2.0)
    assert PLIF(init_tau=3.0).tau == pytest.approx(3.0)
