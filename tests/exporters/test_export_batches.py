"""Calibration and the accuracy check run a batch of images at a time (bounded memory): the results
must be those of one pass over all the images, and the CLI takes the image counts."""

from __future__ import annotations

import json

import h5py
import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from exporters.loihi.export import BATCH_IMAGES, accuracy_report, image_batches, lowered_graph
from exporters.quantize.fakequant import FakeQuantModel
from exporters.quantize.ranges import value_ranges
from testutil import write_toy_nir


def test_image_batches_cut_images_and_frames():
    imgs = torch.arange(2 * BATCH_IMAGES + 3, dtype=torch.float32).view(-1, 1, 1, 1)
    parts = image_batches(imgs, static=True)
    assert [len(p) for p in parts] == [BATCH_IMAGES, BATCH_IMAGES, 3]
    assert torch.equal(torch.cat(parts), imgs)
    frames = torch.zeros(4, BATCH_IMAGES + 1, 2)
    assert [p.shape[1] for p in image_batches(frames, static=False)] == [BATCH_IMAGES, 1]


def test_batched_calibration_and_accuracy_equal_one_pass(tmp_path):
    src = write_toy_nir(tmp_path / "toy.nir")
    low = lowered_graph(str(src), "digits", None, calib_images=2 * BATCH_IMAGES + 5, eval_images=BATCH_IMAGES + 7)
    x = low.x_test
    # the reference: every image in one pass
    one_peaks = value_ranges(low.fg, [x], low.T)
    assert value_ranges(low.fg, image_batches(x, True), low.T) == one_peaks
    fq = FakeQuantModel(low.pg)
    rep = accuracy_report(low.fg, fq, x, low.y_test, low.T)
    with torch.no_grad():
        f = low.fg.run(x.unsqueeze(0).expand(low.T, *x.shape)).mean(0).argmax(1)
        i = fq(x).argmax(1)
    assert rep["samples"] == x.shape[0]
    assert rep["accuracy_float"] == pytest.approx(float((f == low.y_test).float().mean()))
    assert rep["accuracy_int"] == pytest.approx(float((i == low.y_test).float().mean()))
    assert rep["prediction_agreement"] == pytest.approx(float((f == i).float().mean()))


def test_cli_image_counts(tmp_path):
    src = write_toy_nir(tmp_path / "toy.nir")
    out = tmp_path / "m.loihi"
    r = CliRunner().invoke(cli, ["export", str(src), "--target", "loihi", "--out", str(out), "--calib-images", "5",
                                 "--eval-images", "3", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["calibration"] == "digits"
    with h5py.File(out) as f:
        rep = json.loads(f.attrs["report"])
    assert rep["calibration"]["images"] == 5 and rep["accuracy"]["samples"] == 3
    bad = CliRunner().invoke(cli, ["export", str(src), "--target", "loihi", "--out", str(tmp_path / "b.loihi"),
                                   "--calib-images", "0"])
    assert bad.exit_code == 2 and not (tmp_path / "b.loihi").exists()
