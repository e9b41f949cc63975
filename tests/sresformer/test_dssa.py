"""DSSA against a direct re-statement of the paper's equations, and its firing-rate buffers."""

import pytest
import torch

from sresformer.attention import DSSA, calibrate_firing_rates
from sresformer.errors import UncalibratedError
from sresformer.neurons import LIF


def restated(m: DSSA, x):
    """Eq. (8)-(11): per head, A = LIF(c1 Y1^T S), O = LIF(c2 Y2 A), written with explicit loops over heads."""
    T, B, C, H, W = x.shape
    lif = LIF()
    s = lif(x)
    y = torch.nn.functional.conv2d(s.flatten(0, 1), m.W.weight, stride=m.patch_size)
    y = m.norm.bn(y).unflatten(0, (T, B)).flatten(3)  # [T, B, 2C, N]
    s = s.flatten(3)  # [T, B, C, HW]
    d = C // m.num_heads
    outs = []
    for h in range(m.num_heads):
        y1 = y[:, :, 2 * d * h: 2 * d * h + d]
        y2 = y[:, :, 2 * d * h + d: 2 * d * (h + 1)]
        sh = s[:, :, d * h: d * (h + 1)]
        c1 = 1 / torch.sqrt(m.firing_rate_x.flatten()[h] * d)
        c2 = 1 / torch.sqrt(m.firing_rate_attn.flatten()[h] * m.lenth)
        a = lif(torch.einsum("tbdn,tbdk->tbnk", y1, sh) * c1)
        outs.append(torch.einsum("tbdn,tbnk->tbdk", y2, a) * c2)
    o = lif(torch.cat(outs, 2).reshape(T, B, C, H, W))
    o = m.norm_proj.bn(torch.nn.functional.conv2d(o.flatten(0, 1), m.Wproj.weight)).unflatten(0, (T, B))
    return o + x


def make(dim=8, heads=2, size=4, patch=2):
    torch.manual_seed(3)
    m = DSSA(dim, heads, (size // patch) ** 2, patch)
    for p in m.parameters():
        torch.nn.init.normal_(p, 0, 0.6)
    for bn in (m.norm.bn, m.norm_proj.bn):
        bn.running_mean.normal_(0, 0.1)
        bn.running_var.uniform_(0.5, 1.5)
    return m


def test_eval_matches_restatement():
    m = make()
    m.firing_rate_x.copy_(torch.tensor([0.3, 0.2]).reshape(1, 1, 2, 1, 1))
    m.firing_rate_attn.copy_(torch.tensor([0.1, 0.25]).reshape(1, 1, 2, 1, 1))
    m.eval()
    x = torch.randn(3, 2, 8, 4, 4) * 2
    with torch.no_grad():
        ours, ref = m(x), restated(m, x)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours, x)  # the attention branch contributed


def test_rates_seed_then_ema_in_training_and_freeze_in_eval():
    m = make().train()
    x1, x2 = torch.randn(2, 2, 8, 4, 4) * 2, torch.randn(2, 2, 8, 4, 4) * 2
    s1 = LIF()(x1).reshape(2, 2, 2, 4, 16)
    m(x1)
    # first batch seeds the buffer: r = r1 * 0.999 + r1 * 0.001 (== r1 up to rounding)
    r1 = s1.mean((0, 1, 3, 4), keepdim=True)
    torch.testing.assert_close(m.firing_rate_x, r1)
    m(x2)
    r2 = LIF()(x2).reshape(2, 2, 2, 4, 16).mean((0, 1, 3, 4), keepdim=True)
    torch.testing.assert_close(m.firing_rate_x, r1 * 0.999 + r2 * 0.001)
    frozen = m.firing_rate_x.clone(), m.firing_rate_attn.clone()
    m.eval()
    with torch.no_grad():
        m(torch.randn(2, 2, 8, 4, 4) * 5)
    assert torch.equal(m.firing_rate_x, frozen[0]) and torch.equal(m.firing_rate_attn, frozen[1])


def test_fresh_layer_refuses_eval_and_calibration_defines_it():
    m = make().eval()
    x = torch.randn(2, 2, 8, 4, 4) * 2
    with pytest.raises(UncalibratedError, match="calibrate_firing_rates"):
        m(x)
    calibrate_firing_rates(m, [x])
    expected = LIF()(x).reshape(2, 2, 2, 4, 16).mean((0, 1, 3, 4), keepdim=True)
    torch.testing.assert_close(m.firing_rate_x, expected)
    assert torch.all(m.firing_rate_attn > 0)
    assert torch.isfinite(m(x)).all()


def test_dead_head_scales_with_rate_one_not_nan():
    m = make().eval()
    m.firing_rate_x.fill_(0.2)
    m.firing_rate_attn.copy_(torch.tensor([0.0, 0.3]).reshape(1, 1, 2, 1, 1))
    out = m(torch.randn(2, 1, 8, 4, 4) * 3)
    assert torch.isfinite(out).all()
