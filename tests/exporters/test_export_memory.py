"""The export's memory is bounded by one batch's live values, not by the calibration set or the
network's depth: a Ti-shaped graph at reduced size exports under a hard memory cap, and 40
calibration images take no more memory than 8 (the calibration and the integer checks stream
batches of 8, and each pass drops a value after its last reader)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest
import torch

import sresformer
from testutil import ROOT, lively

CAP_GIB = 3.0   # the hard cap (RLIMIT_AS, address space, not resident memory) of the reduced-size export


def export_peak_gib(ckpt, out, images: int) -> float:
    """Peak resident memory (GiB) of ``sresformer export`` calibrated on ``images`` synthetic images,
    run under the :data:`CAP_GIB` address-space cap; fails the test if the export fails."""
    def cap():
        lim = int(CAP_GIB * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "export", str(ckpt), "--target", "loihi",
                             "--calib-data", "synthetic", "--calib-images", str(images), "--eval-images", "4",
                             "--out", str(out)], cwd=ROOT, preexec_fn=cap, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    assert os.waitstatus_to_exitcode(status) == 0, err[-1500:]
    return usage.ru_maxrss / 2**20


@pytest.mark.slow
def test_ti_shaped_export_memory_is_bounded_by_a_batch(tmp_path):
    torch.manual_seed(0)
    model = lively(sresformer.create_model("spikingresformer_ti", img_size=32), torch.rand(4, 3, 32, 32) * 2 - 1)
    ckpt = tmp_path / "ti32.ckpt"
    sresformer.save_checkpoint(model, ckpt)
    few = export_peak_gib(ckpt, tmp_path / "a.loihi", 8)
    many = export_peak_gib(ckpt, tmp_path / "b.loihi", 40)
    assert many <= few * 1.05 + 0.05, (few, many)   # 5x the images, the same memory (5% + 50 MiB of noise)
