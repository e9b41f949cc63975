"""A model that cannot fit the chip is refused from its shapes, before calibration
(exporters/loihi/fit.py): the bound is never above what the calibrated model maps to, so it
never refuses a model that fits, and the refusal costs no calibration pass."""

from __future__ import annotations

import pytest

import sresformer
from bench.hypothetical_chip import chip_variant
from exporters.loihi.export import lowered_graph
from exporters.loihi.fit import fewest_cores
from hw_sim.chips import load_chip
from hw_sim.mapping import map_graph
from testutil import lively, lively_spikformer_nano, one_line_error, run_cli_here, write_toy_nir


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A toy NIR CNN, the nano SpikingResformer and the nano Spikformer (lively: their layers fire)."""
    import torch

    d = tmp_path_factory.mktemp("fit")
    out = {"toy": write_toy_nir(d / "toy.nir")}
    torch.manual_seed(0)
    nano = lively(sresformer.create_model("spikingresformer_nano"), torch.rand(8, 3, 32, 32) * 2 - 1)
    spik = lively_spikformer_nano()
    for name, model in (("spikingresformer_nano", nano), ("spikformer_nano", spik)):
        sresformer.save_checkpoint(model, d / f"{name}.ckpt")
        out[name] = d / f"{name}.ckpt"
    return out


# loihi1 has binary spikes only: the attention models' products do not lower there at all
CASES = [("toy", c) for c in ("loihi2", "loihi2-opmem", "loihi1")] + [
    (m, c) for m in ("spikingresformer_nano", "spikformer_nano") for c in ("loihi2", "loihi2-opmem")]


@pytest.mark.parametrize("model,chip", CASES)
def test_the_shape_bound_is_at_most_the_calibrated_mapping(sources, model, chip):
    spec = load_chip(chip)
    low = lowered_graph(str(sources[model]), "digits", None, chip=spec,
                        calib_images=8, eval_images=4)
    real = map_graph(low.pg, spec, max_chips=1 << 20, fan_out=False)
    cores, chips = fewest_cores(low.fg, low.T, spec)
    assert 0 < cores <= real.cores and chips <= real.chips
    # the compartments alone (neuron state) already bound it from below: the weights' share is what is dropped
    per_core = min(spec.neurons_per_core, spec.memory_words // max(1, spec.cuba_state_words))
    state = sum(-(-g.size // per_core) for g in real.groups.values())
    assert cores >= state


def test_a_model_over_max_chips_is_refused_before_any_calibration(sources, tmp_path, monkeypatch):
    import exporters.loihi.export as export_mod

    def no_calibration(*a, **k):
        raise AssertionError("calibration ran")

    monkeypatch.setattr(export_mod, "value_ranges", no_calibration)
    out = tmp_path / "m.loihi"
    # one core per chip: the nano model needs tens of chips, and --max-chips 2 is far too few
    chip = chip_variant("loihi2", tmp_path / "one-core.toml", "loihi2-one-core",
                        {"cores_per_chip": "1", "mesh_cols": "1"})
    r = run_cli_here("export", sources["spikingresformer_nano"], "--target", "loihi", "--chip", chip,
                     "--max-chips", "2", "--calib-data", "synthetic", "--out", out)
    one_line_error(r, "needs at least", "from its shapes before calibration", "--max-chips is 2")
    assert not out.exists()
