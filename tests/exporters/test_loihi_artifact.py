"""The .loihi artifact and the core mapping: round trip, limits, CLI contract."""

import json
import subprocess
import sys
from dataclasses import replace

import h5py
import pytest
import torch

import sresformer
from hw_sim.artifact import ArtifactError, read_artifact
from exporters.loihi.export import export_loihi
from hw_sim.mapping import MappingError, map_graph
from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.chips import load_chip
from sresformer.data import open_dataset

from testutil import warm_up


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
    d, _ = nano
    pg, mapping, _ = read_artifact(d / "m.loihi")
    chip = load_chip("loihi2")
    for g in mapping.groups.values():
        assert g.chunk <= chip.neurons_per_core and g.words_per_core <= chip.memory_words
        assert g.axons_per_core <= chip.max_fan_in and g.fan_out_per_core <= chip.max_fan_out
        assert g.cores * g.chunk >= g.size > (g.cores - 1) * g.chunk
    assert sorted(g.first_core for g in mapping.groups.values()) == \
        sorted(set(g.first_core for g in mapping.groups.values()))


def test_limits_refused_with_the_layer_named(nano):
    d, _ = nano
    pg, _, _ = read_artifact(d / "m.loihi")
    with pytest.raises(MappingError, match="--max-chips is 0"):
        map_graph(pg, load_chip("loihi2"), max_chips=0)
    tiny = replace(load_chip("loihi2"), memory_words=10)
    with pytest.raises(MappingError, match=r"layer '.*': one compartment needs"):
        map_graph(pg, tiny)
    with pytest.raises(MappingError, match="loihi1 has binary spikes only"):   # the graded residual stream
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
    d, _ = nano
    run = lambda *a: subprocess.run([sys.executable, "-m", "cli.main", "export", str(d / "m.ckpt"), "--target", "loihi",
                                     *a], capture_output=True, text=True)  # noqa: E731
    r = run("--out", str(tmp_path / "a.loihi"), "--chip", "loihi2", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert {"cores", "chips", "neurons", "synapses", "accuracy_drop"} <= set(s) and s["chip"] == "loihi2"
    r = run("--out", str(tmp_path / "c.loihi"), "--chip", "loihi1")
    assert r.returncode == 2 and "binary spikes only" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run("--out", str(tmp_path / "b.loihi"), "--max-chips", "0")
    assert r.returncode == 2 and "--max-chips" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b.loihi").exists()
