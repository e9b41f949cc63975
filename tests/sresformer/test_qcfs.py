"""QCFS and its converted neurons against hand-worked values and Bu et al.'s count identity."""

from __future__ import annotations

import torch

from sresformer.qcfs import QCFS, SoftIF, cumulative_increment, if_soft_reset, qcfs, rate_input


def test_qcfs_hand_worked():
    # L = 4, lambda = 2: z L / lambda + 1/2 = 2z + 0.5 -> floor -> /4 -> clip [0, 1] -> x 2
    z = torch.tensor([-1.0, 0.2, 0.26, 1.0, 1.3, 3.0])
    want = torch.tensor([0.0, 0.0, 0.5, 1.0, 1.5, 2.0])
    assert torch.equal(qcfs(z, 2.0, 4), want)
    act = QCFS(levels=4, lam=2.0)
    assert torch.equal(act(z), want)


def test_qcfs_gradient_passes_the_floor_and_reaches_lambda():
    act = QCFS(levels=4, lam=2.0)
    z = torch.tensor([0.26, 1.3, 3.0], requires_grad=True)
    act(z).sum().backward()
    # inside the clip the straight-through floor makes h = z (+ 0.5 lambda / L): dh/dz = 1; above it h = lambda
    assert torch.equal(z.grad, torch.tensor([1.0, 1.0, 0.0]))
    # dh/dlambda by the product rule, floor held: floor(.)/L - z/lambda inside (1/4 - 0.13, 3/4 - 0.65); 1 above
    assert torch.isclose(act.lam.grad, torch.tensor(0.25 - 0.13 + 0.75 - 0.65 + 1.0))


def test_if_soft_reset_hand_worked():
    # theta 1, v0 = 0.5, input 0.25: v = 0.75, 1.0 -> spike (v 0), 0.25, 0.5, 0.75, 1.0 -> spike
    s = if_soft_reset(torch.full((6, 1), 0.25), 1.0)
    assert s.flatten().tolist() == [0, 1, 0, 0, 0, 1]


def test_soft_if_count_identity_equals_qcfs():
    torch.manual_seed(0)
    levels, lam = 8, 1.7
    z = torch.rand(4000, dtype=torch.float64) * 2.6 * lam - 0.8 * lam   # below 0, inside, above lambda
    spikes = if_soft_reset(z.expand(levels, -1).clone(), lam)
    counts = spikes.cumsum(0)
    for t in range(1, levels + 1):   # Bu et al.: count(t) = clip(floor(t z / theta + 1/2), 0, t) at every t
        assert torch.equal(counts[t - 1], torch.clamp(torch.floor(t * z / lam + 0.5), 0, t))
    # at t = L one converted layer is the QCFS module exactly
    neuron = SoftIF()
    neuron.theta.fill_(lam)
    neuron.scale.fill_(lam)
    out = neuron(z.expand(levels, -1).clone().float()).mean(0)
    assert torch.allclose(out, QCFS(levels, lam)(z.float()), atol=1e-6)


def test_cumulative_increment_is_the_product_of_counts():
    torch.manual_seed(1)
    a = (torch.rand(7, 2, 3, 5, 4) < 0.3).double()
    b = (torch.rand(7, 2, 3, 4, 6) < 0.6).double()
    dP = cumulative_increment(a, b)
    ca = torch.zeros_like(a[0])
    cb = torch.zeros_like(b[0])
    p = torch.zeros(2, 3, 5, 6, dtype=torch.float64)
    for t in range(7):   # the direct form: counts, then their product
        ca, cb = ca + a[t], cb + b[t]
        p = p + dP[t]
        assert torch.equal(p, ca @ cb)


def test_rate_input_sums_to_p_over_t():
    torch.manual_seed(2)
    dP = torch.rand(9, 3, 4, dtype=torch.float64)
    i = rate_input(dP)
    p = dP.cumsum(0)
    for t in range(1, 10):
        assert torch.allclose(i[:t].sum(0), p[t - 1] / t)


def test_mst_ann_takes_a_spike_mask_on_its_qcfs_attention_inputs():
    """``train --spike-mask R:attn`` on an MST ANN masks the QCFS of q, k, v (MST trains with the mask): in
    training a random fraction of each is zeroed, in eval the fixed gate drops the same elements each run."""
    import sresformer
    from sresformer.masking import apply_spike_mask

    torch.manual_seed(0)
    ann = sresformer.create_model("mst_nano", patch=8)
    names = apply_spike_mask(ann, "0.5:attn")
    assert names == [f"blocks.{i}.attn.{n}.act" for i in (0, 1) for n in ("q", "k", "v")]
    act = dict(ann.named_modules())["blocks.0.attn.q.act"]
    z = torch.full((1, 2, 16, 64), 1.0)           # [T, B, N, D]: QCFS(1) = 1 with lambda 2, L 8
    ann.train()
    kept = act(z)
    assert 0.3 < (kept == 0).double().mean() < 0.7 and set(kept.unique().tolist()) == {0.0, 1.0}
    ann.eval()
    assert torch.equal(act(z), act(z)) and 0.3 < (act(z) == 0).double().mean() < 0.7
