"""``sresformer convert`` and ``eval --curve`` on the command line: a run through, and one-line refusals.

The commands run in this process (``cli.main.run``, the console entry point without its
``sys.exit``): a subprocess per call would spend most of the test importing torch.
"""

import json

import pytest
import torch

import sresformer
from testutil import one_line_error
from testutil import run_cli_here as run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ann(tmp_path_factory):
    """An untrained mst_nano ANN checkpoint (digits' shape)."""
    path = tmp_path_factory.mktemp("cli-convert") / "ann.ckpt"
    torch.manual_seed(0)
    sresformer.save_checkpoint(sresformer.create_model("mst_nano"), path, data="digits")
    return path


@pytest.mark.slow   # a training epoch (64 images) and a conversion: about 5-12 s on 2 cores
def test_the_ann_trains_with_train_and_converts(tmp_path):
    # the trainer runs the QCFS ANN at its T = 1 (one step); its checkpoint converts
    r = run("train", "--model", "mst_nano", "--data", "digits", "--out", tmp_path / "run", "--epochs", "1",
            "--limit-train", "64", "--limit-test", "16", "--batch-size", "32")
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)
    assert ckpt["model_kwargs"]["T"] == 1 and not ckpt["model_kwargs"].get("snn")
    r = run("convert", tmp_path / "run" / "last.ckpt", "--out", tmp_path / "snn.ckpt", "--T", "2",
            "--product", "per-step")
    assert r.returncode == 0, r.stderr[-2000:]
    snn = torch.load(tmp_path / "snn.ckpt", weights_only=True)
    assert snn["model_kwargs"]["snn"] is True and snn["model_kwargs"]["product"] == "per-step"
    assert snn["meta"]["converted"]["T"] == 2 and snn["meta"]["data"] == "digits"


def test_convert_then_eval_curve(ann, tmp_path):
    snn = tmp_path / "snn.ckpt"
    r = run("convert", ann, "--out", snn, "--T", "4")
    assert r.returncode == 0, r.stderr[-2000:]
    curve = json.loads(run("eval", snn, "--curve", "4,1,2,2", "--limit", "16", "--json").stdout)
    assert list(curve["curve"]) == ["1", "2", "4"] and curve["samples"] == 16
    # the curve's last point is the plain evaluation of the same T-step checkpoint (a second code path)
    plain = json.loads(run("eval", snn, "--limit", "16", "--json").stdout)
    assert plain["accuracy"] == curve["curve"]["4"]


def test_bad_input_is_one_line(ann, tmp_path):
    other = tmp_path / "spikformer.ckpt"
    sresformer.save_checkpoint(sresformer.create_model("spikformer_nano"), other)
    out = tmp_path / "out.ckpt"
    one_line_error(run("convert", other, "--out", out), "no QCFS")
    one_line_error(run("convert", tmp_path / "missing.ckpt", "--out", out), "missing.ckpt")
    assert not out.exists()
    one_line_error(run("eval", ann, "--curve", "1,x"), "--curve")
    one_line_error(run("eval", ann, "--curve", "0,4"), "outside")
    one_line_error(run("eval", ann, "--curve", "1,2", "--limit", "2"), "convert")


def test_loihi_export_refuses_softmax(tmp_path):
    path = tmp_path / "softmax.ckpt"
    sresformer.save_checkpoint(sresformer.create_model("mst_nano_softmax"), path)
    one_line_error(run("export", path, "--target", "loihi", "--out", tmp_path / "m.loihi"), "softmax")
    assert not (tmp_path / "m.loihi").exists()
