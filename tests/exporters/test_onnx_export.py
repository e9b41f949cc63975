"""ONNX export: onnxruntime on the file gives the torch logits; checker passes; bad input refused."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import sresformer
from exporters.onnx_export import export_onnx
from sresformer.errors import UncalibratedError
from testutil import run_cli_here, warm_up


def run_onnx(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.numpy()})[0]


@pytest.mark.slow
def test_ti_matches_torch_and_holds_all_its_weights(tmp_path):
    """The full Ti network (all widths, heads and blocks) at 64 x 64 rather than its 224: no part of
    the graph or of its weights depends on the image size (convs, DSSA's token count N only scales a
    constant; the 224 default itself is checked by test_cli_foundation), so the smaller input proves
    the same export at a fraction of the warm-up and onnxruntime time; two steps halve the unrolled graph."""
    img = 64   # stages of 16, 8 and 4 positions, divided by the DSSA patches (4, 2, 1): 16 tokens each
    model = warm_up(sresformer.create_model("spikingresformer_ti", img_size=img), torch.randn(2, 3, img, img),
                    steps=1)
    path = tmp_path / "ti.onnx"
    summary = export_onnx(model, path, T=2)   # 2 of Ti's 4 steps: the unroll over T is the CLI test's (--T 3)
    assert summary["T"] == model.T == 2
    onnx.checker.check_model(str(path))
    # every float32 weight of Ti is stored in the one file (none dropped or externalised)
    assert summary["bytes"] >= 4 * sum(p.numel() for p in model.parameters())
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [3, img, img] and dims[0].dim_param   # batch stays dynamic
    x = torch.randn(1, 3, img, img)
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(run_onnx(path, x), ref, atol=1e-4, rtol=0)


def test_uncalibrated_model_is_refused(tmp_path):
    with pytest.raises(UncalibratedError):
        export_onnx(sresformer.create_model("spikingresformer_nano"), tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_file_matches_torch_with_dynamic_batch_and_bad_checkpoint(tmp_path):
    """One export through the CLI (in this process: the export, not the process, is tested): onnxruntime
    on it gives the torch logits at any batch."""
    model = warm_up(sresformer.create_model("spikingresformer_nano"), torch.randn(8, 3, 32, 32))
    sresformer.save_checkpoint(model, tmp_path / "m.ckpt")
    out = tmp_path / "m.onnx"
    r = run_cli_here("export", tmp_path / "m.ckpt", "--target", "onnx", "--out", out, "--T", "3", "--json")
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
    r = run_cli_here("export", tmp_path / "bad.ckpt", "--target", "onnx", "--out", tmp_path / "bad.onnx")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.onnx").exists()
