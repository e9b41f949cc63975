"""ONNX export: onnxruntime on the file gives the torch logits; checker passes; bad input refused."""

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import sresformer
from exporters.onnx_export import export_onnx
from sresformer.errors import UncalibratedError
from testutil import warm_up


def run_onnx(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.numpy()})[0]


@pytest.mark.slow
def test_ti_224_matches_torch(tmp_path):
    model = warm_up(sresformer.create_model("spikingresformer_ti"), torch.randn(2, 3, 224, 224), steps=1)
    path = tmp_path / "ti.onnx"
    export_onnx(model, path)
    onnx.checker.check_model(str(path))
    x = torch.randn(1, 3, 224, 224)   # one image: the export at full size is what this test is for
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(run_onnx(path, x), ref, atol=1e-4, rtol=0)


def test_uncalibrated_model_is_refused(tmp_path):
    with pytest.raises(UncalibratedError):
        export_onnx(sresformer.create_model("spikingresformer_nano"), tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_file_matches_torch_with_dynamic_batch_and_bad_checkpoint(tmp_path):
    """One export through the CLI (the slow part): onnxruntime on it gives the torch logits at any batch."""
    model = warm_up(sresformer.create_model("spikingresformer_nano"), torch.randn(8, 3, 32, 32))
    sresformer.save_checkpoint(model, tmp_path / "m.ckpt")
    out = tmp_path / "m.onnx"
    r = subprocess.run([sys.executable, "-m", "cli.main", "export", str(tmp_path / "m.ckpt"), "--target", "onnx",
                        "--out", str(out), "--T", "3", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["T"] == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt", "m.onnx"]  # self-contained
    onnx.checker.check_model(str(out))
    model.T = 3
    for batch in (1, 5):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            ref = model(x).numpy()
        got = run_onnx(out, x)
        assert got.shape == (batch, 10)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    (tmp_path / "bad.ckpt").write_bytes(b"PK\x03\x04broken")
    r = subprocess.run([sys.executable, "-m", "cli.main", "export", str(tmp_path / "bad.ckpt"), "--target", "onnx",
                        "--out", str(tmp_path / "bad.onnx")], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.onnx").exists()
