"""The chip's cumulative product (hw_sim/ratenorm.py) against a hand-worked case and the float converted model.

Three implementations of the rate-normalised IF meet here: the simulator's additions-only registers
(``hw_sim.ratenorm.rate_steps``), the fake-quant model's closed form (``exporters/quantize/fakequant.py``)
and the float converted model's soft-reset IF fed ``rate_input`` (``sresformer.qcfs``).
"""

from __future__ import annotations

import torch

from exporters.quantize.fakequant import rate_neuron
from hw_sim.ratenorm import max_steps, rate_steps, register_bound
from sresformer.qcfs import cumulative_increment, if_soft_reset, rate_input


def test_rate_neuron_hand_worked():
    # Theta 4, beta 0, dP = 3, 0, 5 (P = 3, 3, 8): t=1: 2*3 = 6 >= 1*4*1 -> spike (N = 1);
    # t=2: 6 >= 2*4*3 = 24 no; t=3: 16 >= 3*4*3 = 36 no. The float IF on P/t: v = 2 + 3 = 5 -> spike (1),
    # 1 + (1.5 - 3) = -0.5, -0.5 + (8/3 - 1.5) = 0.67: the same.
    x = torch.tensor([[3], [0], [5]])
    fired, _ = rate_steps(x, torch.tensor(4), None)
    assert fired.view(-1).tolist() == [True, False, False]
    assert if_soft_reset(rate_input(x.double()), 4.0).view(-1).tolist() == [1.0, 0.0, 0.0]


def test_register_bound_hand_worked():
    # T 4, Theta 3, beta -2, P at most 50: |2P + Q| <= 100 + 2*16*2 = 164; R <= 4*3*9 = 108
    assert register_bound(4, 3, -2, 50) == 164
    assert register_bound(4, 30, 0, 50) == 4 * 30 * 9
    # k = 1 products, Theta 1, no bias: max(2 T^2, T (2T + 1)) = 2T^2 + T <= 136 at T = 8, 171 at T = 9
    assert max_steps(1, 0, lambda n: n * n, 136) == 8 and max_steps(1, 0, lambda n: n * n, 170) == 8


def test_three_implementations_agree_on_a_small_cumulative_product():
    """Spikes of q, k (heads 2, d 3, N 4, T 8) -> dP by ``cumulative_increment`` -> the float model's IF on
    ``alpha rate_input(dP) + beta`` against the integer neurons with ``Theta = theta / alpha``,
    ``beta' = beta / alpha`` (exact integers here): the registers' and the closed form's spikes equal it."""
    g = torch.Generator().manual_seed(3)
    T, alpha = 8, 0.5
    q = (torch.rand(T, 1, 2, 4, 3, generator=g) < 0.5).double()
    k = (torch.rand(T, 1, 2, 4, 3, generator=g) < 0.5).double()
    dP = cumulative_increment(q, k.transpose(-1, -2))              # [T, 1, 2, 4, 4], integers
    assert torch.equal(dP.cumsum(0), q.cumsum(0) @ k.cumsum(0).transpose(-1, -2))   # P_t = C^q_t (C^k_t)^T
    theta = torch.tensor(3.0)
    beta = torch.randint(-2, 3, (2, 4, 4), generator=g).double() * alpha   # beta' = beta / alpha integer
    want = if_soft_reset(alpha * rate_input(dP) + beta, theta)
    vth, b = int(theta / alpha), beta / alpha
    got, _ = rate_steps(dP.long(), torch.tensor(vth), b.long())
    assert torch.equal(got.double(), want)
    # the closed form 2P + 2t^2 beta >= t Theta (2N + 1) (the fake-quant model's) on the same integers
    assert torch.equal(rate_neuron(dP, float(vth), b), want)
    # with the input's power of two on both sides of the comparison the spikes are the same
    assert torch.equal(rate_neuron(dP, float(vth * 8), b * 8, in_shift=3), want)
    assert 0 < want.sum() < want.numel()   # some neurons fire, not all: the comparison is not vacuous


def test_lowering_caps_T_at_the_registers_width():
    """The converted mst_nano (8x8 patches) with cumulative products lowers at a small T, with the largest
    input shift that fits, and is refused in one line past the T its 24-bit registers hold; at that T
    (named in the message) it lowers. Lowering only (peaks given, no calibration run): about 2 s."""
    import re

    import pytest

    import sresformer
    from exporters.loihi.flatgraph import FlatGraph
    from exporters.loihi.lower import lower
    from exporters.nir.convention import NIRError
    from exporters.nir.export import model_to_nir
    from sresformer.convert import convert_model

    torch.manual_seed(0)
    ann = sresformer.create_model("mst_nano", patch=8).eval()

    def lowered(T):
        fg = FlatGraph(model_to_nir(convert_model(ann, T=T, product="cumulative")))
        return lower(fg, {n: 1.0 for n in fg.nodes}, T, "loihi2")

    rate = [p for p in lowered(4) if p.kind == "neuron" and p.attrs.reset == "rate"]
    assert len(rate) == 4 and all(p.attrs.in_shift > 0 for p in rate)   # attn_act, out_act of 2 blocks
    with pytest.raises(NIRError, match="registers exceed the 24-bit state") as e:
        lowered(2000)
    assert "\n" not in str(e.value)
    most = int(re.search(r"at most T = (\d+)", str(e.value)).group(1))
    assert 4 < most < 2000 and any(p.kind == "neuron" and p.attrs.reset == "rate" for p in lowered(most))
