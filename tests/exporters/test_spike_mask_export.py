"""Random spike masks through NIR and the Loihi lowering: round trip, agreement 1.0, exact counts of the
surviving spikes (worked out with an independent numpy gate)."""

import itertools

import nir
import numpy as np
import pytest
import torch

import sresformer
from exporters.nir import load_for_eval
from exporters.nir.export import export, model_to_nir
from exporters.nir.masking import mask_graph
from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.counters import Counter, CountPlan
from hw_sim.executor import Executor
from hw_sim.mapping import map_graph
from hw_sim.processes import Process, ProcessGraph
from hw_sim.simulate import simulate
from sresformer.data import open_dataset
from sresformer.masking import SpikeMaskError, apply_spike_mask, parse_spec
from testutil import export_small, lively, np_keep

pytestmark = pytest.mark.usefixtures("one_thread")

NEURON = {"dv": 0, "du": 4096, "state_bits": 24, "decay_bits": 12}
GATE = {"ratio": 0.5, "seed": 7, "gate_id": 3}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("mask")
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(16)])
    torch.manual_seed(0)
    model = lively(sresformer.create_model("spikingresformer_nano"), x)
    sresformer.save_checkpoint(model, d / "plain.ckpt")
    apply_spike_mask(model, "0.5:attn,mlp")
    sresformer.save_checkpoint(model, d / "masked.ckpt")
    return d, model, x


def test_nir_round_trip_and_graph_level_masking(models):
    d, model, x = models
    graph = export(model, d / "masked.nir")
    assert "sresformer.spike_mask" in graph.metadata["extensions_required"]
    masked = model(x)
    back = load_for_eval(d / "masked.nir")(x)
    assert torch.allclose(back, masked, atol=1e-5)
    plain = sresformer.load_checkpoint(d / "plain.ckpt")
    assert not torch.allclose(plain(x), masked, atol=1e-3)
    # gates inserted into the unmasked NIR graph are the same gates (same ids, same places)
    spec = parse_spec("0.5:attn,mlp")
    regated = mask_graph(model_to_nir(plain), spec)
    export_nir = d / "regated.nir"
    nir.write(str(export_nir), regated)
    assert torch.allclose(load_for_eval(export_nir)(x), masked, atol=1e-5)
    with pytest.raises(SpikeMaskError, match="already carries"):
        mask_graph(graph, spec)


def test_masked_artifact_agrees_and_saves_synaptic_ops(models):
    from cli.simulate_cmd import fake_quant_reference

    d, _, _ = models
    out = {}
    for name in ("plain", "masked"):
        export_small(d / f"{name}.ckpt", d / f"{name}.loihi")
        out[name] = simulate(d / f"{name}.loihi", "digits", 8, reference=fake_quant_reference)
    assert out["masked"]["agreement"] == 1.0 and out["plain"]["agreement"] == 1.0
    assert out["masked"]["ac"] < out["plain"]["ac"]


def hand_graph(T=3, size=4):
    w = np.ones((1, 1, 3, 3), np.int64)
    procs = [
        Process("input", "input", [], (1, size, size), attrs={"bits": 8}, static=True),
        Process("n0", "neuron", ["input"], (1, size, size), params={"vth": np.array([1])}, attrs=NEURON),
        Process("g0", "gate", ["n0"], (1, size, size), attrs=GATE),
        Process("conv", "synapse", ["g0"], (1, size, size), params={"weight": w, "bias": np.zeros(1, np.int64)},
                attrs={"op": "conv", "stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 1,
                       "shift": 0, "graded_input": False, "weight_bits": 8}),
        Process("n1", "neuron", ["conv"], (1, size, size), params={"vth": np.array([10 ** 6])}, attrs=NEURON),
    ]
    return ProcessGraph({p.name: p for p in procs}, "n1", T=T, input_shape=(1, size, size))


def test_gate_counts_only_surviving_spikes_exactly():
    import dataclasses

    from hw_sim.chips import load_chip

    tiny = dataclasses.replace(load_chip("loihi2"), name="tiny", description="2-wide mesh, 8 compartments per core",
                               cores_per_chip=16, neurons_per_core=8, max_fan_in=10 ** 4, max_fan_out=10 ** 4,
                               mesh_cols=2)
    pg = hand_graph()
    mapping = map_graph(pg, tiny)
    assert mapping.placement["g0"] == "n0" and "g0" not in mapping.groups
    x = torch.ones(2, 1, 4, 4)                      # n0 fires everywhere at every step
    counter = Counter(CountPlan(pg, mapping), pg.T, 2)
    res = Executor(pg).run(x, hook=counter, keep=True)
    _, ref = FakeQuantModel(pg).run(x, keep=True)
    assert torch.equal(res.values["g0"].double(), ref["g0"].expand(res.values["g0"].shape))
    c = counter.counts
    for t in range(pg.T):
        keep = np_keep(0.5, 7, 3, t, np.arange(16)).reshape(4, 4)
        assert np.array_equal(res.values["g0"][t, 1, 0].numpy() != 0, keep)
        # each surviving spike: its 'same' 3x3 fan-out (4 corner, 6 edge, 9 inside) in ACs, and one message
        # per destination core it reaches (n1 rows 0-1 on one core, rows 2-3 on the other)
        fan = lambda y, xx: (min(y + 1, 3) - max(y - 1, 0) + 1) * (min(xx + 1, 3) - max(xx - 1, 0) + 1)  # noqa: E731
        alive = [(y, xx) for y, xx in itertools.product(range(4), range(4)) if keep[y, xx]]
        assert float(c.core["ac"][t, 1].sum()) == sum(fan(y, xx) for y, xx in alive)
        assert float(c.core["msgs"][t, 1].sum()) == sum((y <= 2) + (y >= 1) for y, _ in alive)
        assert float(c.core["spikes"][t, 1].sum()) == 16     # the neurons still emit every spike
    assert 0 < int(res.values["g0"].sum()) < 2 * 16 * pg.T


def test_gate_must_read_spikes():
    from exporters.loihi.flatgraph import FlatGraph
    from exporters.loihi.lower import lower
    from exporters.nir.convention import NIRError
    from exporters.nir.extension import spike_mask_graph

    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([1, 4, 4])), "g": spike_mask_graph((1, 4, 4), 0.5, 0, 0),
                            "output": nir.Output(np.array([1, 4, 4]))},
                     edges=[("input", "g"), ("g", "output")], metadata={})
    fg = FlatGraph(g)
    with pytest.raises(NIRError, match="spike mask must read"):
        lower(fg, {n: 1.0 for n in fg.nodes}, T=2)
