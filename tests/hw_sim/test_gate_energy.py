"""MA attention gates in the simulator's summary and the energy report."""

import pytest
import torch

import sresformer
from hw_sim.chips import load_energy_profile
from hw_sim.energy import layer_role, price
from hw_sim.simulate import simulate
from sresformer.ma_attention import MultiDimAttention
from testutil import export_small, lively


def test_gates_are_priced_as_macs_in_both_conventions():
    prof = load_energy_profile("paper-45nm")
    rows = [{"name": "layers.0.1.up.0.attn", "dense_macs": 100.0, "ac": 40.0, "mac": 100.0, "firing_rate": 1.0},
            {"name": "layers.0.1.up.1", "dense_macs": 1000.0, "ac": 300.0, "mac": 0.0, "firing_rate": 0.1}]
    assert layer_role(rows[0]["name"]) == "MA gate"
    for convention in ("standard", "paper"):
        gate = price(rows, convention, prof)["layers"][0]
        assert gate["mac"] == 100.0 and gate["ac"] == 40.0
        assert gate["energy_j"] == pytest.approx((40 * prof.ac_pj + 100 * prof.mac_pj) * 1e-12)


def test_simulated_cs_model_agrees_and_counts_every_gate(tmp_path):
    from cli.simulate_cmd import fake_quant_reference
    from sresformer.data import open_dataset

    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(16)])
    torch.manual_seed(0)
    model = lively(sresformer.create_model("spikingresformer_nano", attention="cs"), x)
    sresformer.save_checkpoint(model, tmp_path / "m.ckpt")
    export_small(tmp_path / "m.ckpt", tmp_path / "m.loihi")
    r = simulate(tmp_path / "m.loihi", "digits", limit=8, reference=fake_quant_reference, progress=False)
    assert r["agreement"] == 1.0
    # gate MACs per image from the float model's own count: static first gate once, the others T times
    want = 0
    for name, m in model.named_modules():
        if isinstance(m, MultiDimAttention):
            C = m.ca.channels
            size = {32: 8, 64: 4, 128: 2}[C]
            want += m.gate_ops((C, size, size))["mac"] * (1 if name == "layers.0.0.activation_in.attn" else model.T)
    assert r["gate_mac"] == want
    assert r["counts"]["embedded"]["mac"] > r["gate_mac"] > 0   # the stem runs there too
