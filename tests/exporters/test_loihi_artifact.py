"""The .loihi artifact and the core mapping: round trip, limits, CLI contract."""

import json
from dataclasses import replace
from pathlib import Path

import h5py
import pytest
import torch

import hw_sim
import sresformer
from exporters.loihi.export import export_loihi
from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.artifact import ArtifactError, read_artifact
from hw_sim.chips import load_chip
from hw_sim.mapping import MappingError, map_graph
from sresformer.data import open_dataset
from testutil import run_cli_here, warm_up


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    d = tmp_path_factory.mktemp("loihi")
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(32)])
    sresformer.save_checkpoint(warm_up(sresformer.create_model("spikingresformer_nano"), x, steps=3), d / "m.ckpt")
    summary = export_loihi(str(d / "m.ckpt"), d / "m.loihi")
    return d, summary


def test_round_trip_keeps_the_integer_model(nano):
    d, summary = nano
    pg, mapping, report = read_artifact(d / "m.loihi")
    assert mapping.cores == summary["cores"] and report["mapping"]["chips"] == summary["chips"]
    assert report["accuracy"]["samples"] == 360
    # the artifact's graph computes what the exporter measured: re-run the accuracy check
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.test[i][0] for i in range(360)])
    y = torch.tensor([data.test[i][1] for i in range(360)])
    acc = float((FakeQuantModel(pg)(x).argmax(1) == y).float().mean())
    assert acc == pytest.approx(report["accuracy"]["accuracy_int"])


def test_every_core_respects_the_chip(nano):
    """Recounted from the graph, against the limits read from the chip's TOML file (not from the
    mapper's own figures): compartments per core from the placement rule (compartment ``i`` of a group
    on core ``first_core + i // chunk``), and the stored synapses of each core of a group of synapses
    and their neuron, by torch's conv of an all-ones input with ``|W| > 0``."""
    import tomllib

    import numpy as np
    import torch.nn.functional as F

    d, _ = nano
    pg, mapping, _ = read_artifact(d / "m.loihi")
    toml = tomllib.loads((Path(hw_sim.__file__).parent / "profiles" / "loihi2.toml").read_text())["chip"]
    used = []
    checked = 0
    for name, g in mapping.groups.items():
        p = pg.processes[name]
        size = int(np.prod(p.out_shape))
        if p.kind == "prodmm":   # one product compartment per term: DSSA's d heads x tokens x positions
            y, spk = (pg.processes[o] for o in p.operands)
            size = int(np.prod(y.out_shape)) // 2 * int(np.prod(spk.out_shape[1:]))
            assert p.attrs.form in ("y1T@s", "y2@a")
        core = g.first_core + np.arange(size) // g.chunk
        per_core = np.bincount(core - g.first_core)
        assert len(per_core) == g.cores and per_core.max() <= toml["neurons_per_core"], name
        used += sorted(set(core.tolist()))
        # groups of conv synapses alone (a synapse with several readers), or with the neuron they feed
        syn = [pg.processes[m] for m in g.members if pg.processes[m].kind == "synapse"]
        rest = [pg.processes[m] for m in g.members if pg.processes[m].kind != "synapse"]
        if not syn or any(p.attrs.op != "conv" for p in syn) \
                or any(q.kind != "neuron" or set(q.sources) != {p.name for p in syn} for q in rest):
            continue
        taps = 0
        for p in syn:
            ones = torch.ones(1, *pg.processes[p.sources[0]].out_shape, dtype=torch.float64)
            w = torch.from_numpy(p.params["weight"] != 0).double()
            a = p.attrs
            taps = taps + F.conv2d(ones, w, None, a.stride, a.padding, a.dilation, a.groups).flatten()
        stored = np.bincount(core - g.first_core, weights=taps.numpy())
        assert g.synapses_per_core == stored.max(), name
        checked += 1
    assert checked >= 3
    # every core holds one group, and the groups take consecutive cores from 0
    assert sorted(used) == list(range(mapping.cores))


def test_limits_refused_with_the_layer_named(nano):
    d, _ = nano
    pg, _, _ = read_artifact(d / "m.loihi")
    with pytest.raises(MappingError, match="--max-chips is 0"):
        map_graph(pg, load_chip("loihi2"), max_chips=0)
    tiny = replace(load_chip("loihi2"), memory_words=10)
    with pytest.raises(MappingError, match=r"layer '.*': one compartment needs"):
        map_graph(pg, tiny)
    with pytest.raises(MappingError, match="loihi1 has no product neurons"):   # DSSA's product compartments
        map_graph(pg, load_chip("loihi1"))


def test_bad_artifacts(tmp_path, nano):
    d, _ = nano
    trunc = tmp_path / "t.loihi"
    trunc.write_bytes((d / "m.loihi").read_bytes()[:5000])
    with pytest.raises(ArtifactError, match="truncated"):
        read_artifact(trunc)
    with h5py.File(tmp_path / "f.loihi", "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(ArtifactError, match="not a sresformer"):
        read_artifact(tmp_path / "f.loihi")


def test_cli_json_and_refusal(nano, tmp_path):
    """The CLI in this process (its summary and refusals are tested, not the process); the JSON export
    with a short calibration: the fixture's export already covers the default image counts."""
    d, _ = nano
    def run(*a):
        return run_cli_here("export", d / "m.ckpt", "--target", "loihi", "--calib-images", "16", "--eval-images", "8",
                            *a)
    r = run("--out", tmp_path / "a.loihi", "--chip", "loihi2", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert {"cores", "chips", "neurons", "synapses", "accuracy_drop"} <= set(s) and s["chip"] == "loihi2"
    assert read_artifact(tmp_path / "a.loihi")[2]["accuracy"]["samples"] == 8
    r = run("--out", tmp_path / "c.loihi", "--chip", "loihi1")
    # loihi1 has neither product neurons nor graded spikes: DSSA's products are refused at the lowering
    assert r.returncode == 2 and "loihi1 has no product neurons" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "c.loihi").exists()
    r = run("--out", tmp_path / "b.loihi", "--max-chips", "0")
    assert r.returncode == 2 and "--max-chips" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b.loihi").exists()
