"""The converted MST on the chip: ``convert --product per-step``, ``export --target loihi``, ``simulate``.

The simulator's agreement is its own check against a second implementation of the same integer
equations (the fake-quant torch model, ``exporters/quantize/fakequant.py``): every sample's logits
and every neuron's spikes bit-equal. The NIR graph's float run is checked against the model's own
SNN forward (``sresformer.mst``), an independent implementation of the converted network.
"""

import json

import pytest
import torch

import sresformer
from testutil import one_line_error
from testutil import run_cli_here as run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def snns(tmp_path_factory):
    """An untrained mst_nano ANN with 8x8 patches (16 tokens), converted at T = 4 both ways."""
    from sresformer.convert import convert_model

    d = tmp_path_factory.mktemp("mst-chip")
    torch.manual_seed(0)
    ann = sresformer.create_model("mst_nano", patch=8).eval()
    out = {}
    for product in ("per-step", "cumulative"):
        out[product] = d / f"snn_{product}.ckpt"
        sresformer.save_checkpoint(convert_model(ann, T=4, product=product), out[product], data="digits")
    return out


@pytest.mark.parametrize("product, mask", [("per-step", None), ("per-step", "0.5:attn,mlp"),
                                           ("cumulative", "0.5:attn,mlp")])
def test_nir_graph_runs_as_the_models_snn(snns, product, mask):
    """The flat NIR graph (soft-reset IF extension, q@kT / qk@v products or the cumulative product's spike
    counters, spikes-against-counts products and rate-normalised neurons, the spike gates) in float gives
    the SNN's logits, masked or not; the mask really changes them."""
    from exporters.loihi.flatgraph import FlatGraph
    from exporters.nir.export import model_to_nir
    from sresformer.masking import apply_spike_mask

    snn = sresformer.load_checkpoint(snns[product]).eval()
    plain = None
    if mask is not None:
        plain = snn.forward_steps(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
        assert len(apply_spike_mask(snn, mask)) == 4 * 2   # q, k, v, fc1 in each of 2 blocks
        snn.eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    fg = FlatGraph(model_to_nir(snn))
    got = fg.run(x.unsqueeze(0).expand(snn.T, *x.shape))
    want = snn.forward_steps(x)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    assert plain is None or not torch.allclose(plain, want, atol=1e-3)


@pytest.mark.slow   # export (calibration, mapping) and a simulation of 4 images: about 2-8 s on 2 cores (per-step),
# 15-30 s (cumulative: two products a layer, counters)
@pytest.mark.parametrize("product, mask", [("per-step", []), ("per-step", ["--spike-mask", "0.5:attn"]),
                                           ("cumulative", ["--spike-mask", "0.5:attn"])])
def test_converted_mst_exports_to_loihi2_and_simulates_in_agreement(snns, tmp_path, product, mask):
    art = tmp_path / "m.loihi"
    r = run("export", snns[product], "--target", "loihi", "--chip", "loihi2", "--out", art,
            "--calib-images", "8", "--eval-images", "8", "--json", *mask)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["T"] == 4 and summary["attention"] == "prodneuron"
    r = run("simulate", art, "--limit", "4", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert s["samples"] == 4 and s["agreement"] == 1.0
    assert s["ac"] > 0   # spikes moved through the synapses: the agreement compares activity, not silence
    if product == "cumulative":
        # the attention neuron (2 heads x 16 x 16 rate-normalised IFs) reads only graded count products
        # (MACs), so its cores' ACs are its register additions: 7 per compartment and step, 3 per spike
        cores = [c for c in s["per_core"] if c["group"] == "blocks.0.attn_act"]
        spikes = sum(c["spikes"] for c in cores)
        assert spikes > 0 and sum(c["ac"] for c in cores) == 7 * 512 * 4 + 3 * spikes


@pytest.mark.parametrize("product, chip, words", [
    ("per-step", "loihi1", ["resets its neurons to 0", "--chip loihi2"]),
    ("cumulative", "loihi1", ["resets its neurons to 0", "--chip loihi2"]),
])
def test_refusals_are_one_line(snns, tmp_path, product, chip, words):
    """Loihi 1's CUBA compartment has no subtractive reset (nor the cumulative product's programmable neuron)."""
    out = tmp_path / "m.loihi"
    r = run("export", snns[product], "--target", "loihi", "--chip", chip, "--out", out,
            "--calib-images", "4", "--eval-images", "4")
    one_line_error(r, *words)
    assert not out.exists()


@pytest.mark.slow   # two models exported and simulated on 2 images: about 15-25 s on 2 cores
def test_energy_compare_puts_the_converted_mst_beside_spikingresformer(snns):
    """``energy --compare``: the converted MST beside a SpikingResformer; the MST simulated on loihi2 in
    agreement with the fake-quant model, its attention on product compartments."""
    r = run("energy", snns["per-step"], "spikingresformer_nano", "--compare", "--limit", "2", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["model"]: row for row in json.loads(r.stdout)["rows"]}
    assert set(rows) == {"mst_nano", "spikingresformer_nano"}
    mst = rows["mst_nano"]
    assert "chip_note" not in mst and mst["agreement"] == 1.0 and mst["chip_energy_j"] > 0
    assert mst["attention"] == "prodneuron" and mst["T_chip"] == 4
    # an untrained SpikingResformer's weights may not fit the chip formats (its one-line chip_note); its
    # float side is priced under both conventions beside the MST's (an untrained one may not spike)
    for row in rows.values():
        assert row["energy_standard_j"] > row["energy_paper_j"] >= 0 and row["dense_macs"] > 0
    assert mst["energy_paper_j"] > 0
