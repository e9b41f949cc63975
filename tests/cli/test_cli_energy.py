"""``sresformer energy`` on a checkpoint: JSON totals equal the layer sums and the library's count."""

import json

import pytest
import torch

import sresformer
from sresformer.data import open_dataset
from sresformer.sops import count_ops
from testutil import run_cli_here as run
from testutil import warm_up


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("e") / "nano.ckpt"
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(32)])
    sresformer.save_checkpoint(warm_up(sresformer.create_model("spikingresformer_nano"), x, steps=3), path)
    return path



def test_json_report(ckpt, tmp_path):
    r = run("energy", str(ckpt), "--data", "digits", "--limit", "8", "--json", "--plot", str(tmp_path / "p.png"))
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert rep["samples"] == 8 and (tmp_path / "p.png").exists()
    for key in ("ac", "mac", "sops", "energy_j"):
        assert rep["total"][key] == pytest.approx(sum(layer[key] for layer in rep["layers"]))
    assert {"name", "macs", "firing_rate", "sops", "energy_j"} <= set(rep["layers"][0])
    # independent: the library counter on the same 8 test images
    model = sresformer.load_checkpoint(ckpt)
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.test[i][0] for i in range(8)])
    ac = sum(rec.ac for rec in count_ops(model, [x])) / 8
    assert rep["total"]["ac"] == pytest.approx(ac)


def test_paper_convention_and_formats(ckpt):
    md = run("energy", str(ckpt), "--limit", "4", "--convention", "paper", "--markdown")
    assert md.returncode == 0 and "| **total** |" in md.stdout and "paper" in md.stdout
    c = run("energy", str(ckpt), "--limit", "4", "--csv")
    assert c.returncode == 0 and c.stdout.splitlines()[0].startswith("name,role,macs")


def test_bad_inputs(tmp_path, ckpt):
    r = run("energy", str(tmp_path / "missing.ckpt"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = run("energy", str(ckpt), "--data", "nonsense")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = run("energy", str(ckpt), "--chip-profile", "nope")
    assert r.returncode == 2 and "built-in" in r.stderr
