"""CLI: models listing and bad input -> one stderr line, exit status 2, no traceback."""

import json

import pytest
import torch

import sresformer
from testutil import run_cli_here as run


def test_models_json_matches_library():
    r = run("models", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert set(rows) == set(sresformer.list_models())
    ti = rows["spikingresformer_ti"]
    assert ti["params"] == sum(p.numel() for p in sresformer.create_model("spikingresformer_ti").parameters())
    assert (ti["img_size"], ti["num_classes"]) == (224, 1000)
    assert {"name", "params", "macs_per_step", "img_size", "num_classes"} <= set(ti)


def test_models_table():
    r = run("models")
    assert r.returncode == 0 and "spikingresformer_nano" in r.stdout and "MACs:" in r.stdout


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 10, None])
def test_import_official_bad_file(tmp_path, content):
    src = tmp_path / "x.pth"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "out.ckpt"
    r = run("import-official", str(src), "--model", "spikingresformer_ti", "--out", str(out))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


def test_import_official_unknown_model(tmp_path):
    src = tmp_path / "x.pth"
    torch.save({"classifier.weight": torch.zeros(2, 2)}, src)
    r = run("import-official", str(src), "--model", "nope", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown model 'nope'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
