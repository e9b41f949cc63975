"""SOP counts of the converted MST's per-step attention products (``sresformer.sops``).

Reference, by hand from the spikes the model's own neurons emit (forward hooks on ``k`` and ``v``):
``q_t k_t^T`` costs ``N`` accumulates per key spike (each adds a column of ``q_t``), ``A_t v_t`` costs
``N`` per value spike.
"""

import torch

import sresformer
from sresformer.convert import convert_model
from sresformer.sops import count_ops


def test_per_step_products_are_counted_from_the_spikes():
    torch.manual_seed(0)
    snn = convert_model(sresformer.create_model("mst_nano", patch=8).eval(), T=3, product="per-step")
    att = snn.blocks[0].attn
    seen = {}
    for name in ("k", "v"):
        getattr(att, name).act.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    layers = {r.name: r for r in count_ops(snn, [x])}
    n_tok = seen["k"].shape[-2]
    for prod, operand in (("qk", "k"), ("av", "v")):
        spikes = int((seen[operand] != 0).sum())
        assert spikes > 0
        assert layers[f"blocks.0.attn.{prod}"].ac == spikes * n_tok
        assert layers[f"blocks.0.attn.{prod}"].mac == 0
