"""ANN -> SNN conversion of the MST family: folding is exact, the SNN converges to the ANN."""

from __future__ import annotations

import pytest
import torch

from sresformer.convert import ConversionError, convert_model
from sresformer.qcfs import QCFS, SoftIF, qcfs
from sresformer.registry import create_model


def _ann(name: str = "mst_nano", seed: int = 0, levels: int = 8):
    """A small random QCFS ANN with non-trivial BN statistics, affines and lambdas (eval mode)."""
    torch.manual_seed(seed)
    ann = create_model(name, img_size=16, levels=levels)
    x = torch.rand(16, 3, 16, 16)
    ann.train()
    with torch.no_grad():
        for _ in range(3):
            ann(x)
        for m in ann.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
            if isinstance(m, QCFS):
                m.lam.uniform_(0.5, 3.0)
        for blk in ann.blocks:
            blk.attn.bias.normal_(0, 0.5)
    return ann.eval(), x[:8]


def _ideal_rates(snn):
    """Each SoftIF replaced by its rate limit, QCFS(x; theta, L) / theta in spikes per step (times scale)."""
    for m in snn.modules():
        if isinstance(m, SoftIF):
            m.forward = (lambda mod: lambda x: qcfs(x, mod.theta, snn.levels) / mod.theta * mod.scale)(m)
    return snn


@pytest.mark.parametrize("name", ["mst_nano", "mst_nano_softmax"])
def test_folding_is_exact_with_rate_neurons(name):
    # the folded network with every neuron at its rate limit is the ANN: BN and lambda folds lose nothing
    ann, x = _ann(name)
    snn = _ideal_rates(convert_model(ann, T=1, product="per-step"))
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in snn.modules())
    with torch.no_grad():
        want, got = ann(x), snn(x)
    assert want.abs().max() > 0.1
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)


def test_snn_converges_to_the_clip_network_with_cumulative_products():
    # as T grows an IF neuron's rate tends to clip(z / theta, 0, 1), QCFS without its floor (L -> infinity):
    # the reference is the ANN with every QCFS at 2^20 levels
    ann, x = _ann(levels=4)
    with torch.no_grad():
        snns = {(T, p): convert_model(ann, T=T, product=p) for T in (16, 64) for p in ("cumulative", "per-step")}
        for m in ann.modules():
            if isinstance(m, QCFS):
                m.levels = 1 << 20
        want = ann(x)
        err = {k: float((snn(x) - want).abs().mean() / want.abs().mean()) for k, snn in snns.items()}
    assert err[64, "cumulative"] < 0.01 and err[64, "cumulative"] < err[16, "cumulative"] / 2, err
    # the product of running counts tracks the product of rates better than the mean of per-step products
    assert err[64, "cumulative"] < err[64, "per-step"], err


def test_convert_refuses_models_without_qcfs_and_snns():
    with pytest.raises(ConversionError, match="no QCFS"):
        convert_model(create_model("spikformer_nano"))
    ann, _ = _ann()
    with pytest.raises(ConversionError, match="already a converted SNN"):
        convert_model(convert_model(ann, T=4))
