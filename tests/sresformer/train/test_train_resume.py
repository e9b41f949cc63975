"""Resume: an interrupted run ends exactly where an uninterrupted one does, even after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sresformer import read_checkpoint
from sresformer.errors import CheckpointError, UserError
from sresformer.train import train

ROOT = Path(__file__).resolve().parents[3]
RUN = dict(epochs=2, batch_size=16, limit_train=48, limit_test=16, seed=3, lr=3e-3)


def _equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _lines(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _drop_timing(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]


@pytest.mark.parametrize("workers", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, workers):
    whole, split = tmp_path / "whole", tmp_path / "split"
    train("spikingresformer_nano", str(whole), workers=workers, progress=False, **RUN)
    first = train("spikingresformer_nano", str(split), workers=workers, stop_after=1, progress=False, **RUN)
    assert first["epochs_completed"] == 1 and len(_lines(split)) == 1
    # a torch RNG draw in between must not matter: resume restores every generator
    torch.rand(100)
    train("spikingresformer_nano", str(split), resume=True, progress=False)
    a, b = read_checkpoint(whole / "last.ckpt"), read_checkpoint(split / "last.ckpt")
    _equal_states(a["state_dict"], b["state_dict"])
    opt_a, opt_b = a["train_state"]["optimizer"]["state"], b["train_state"]["optimizer"]["state"]
    assert opt_a.keys() == opt_b.keys()
    for k in opt_a:
        _equal_states(opt_a[k], opt_b[k])
    assert a["train_state"]["scheduler"] == b["train_state"]["scheduler"]
    assert _drop_timing(_lines(whole)) == _drop_timing(_lines(split))
    assert a["meta"]["firing_rates"] == b["meta"]["firing_rates"]


def test_resume_truncates_metrics_written_after_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    train("spikingresformer_nano", str(run), stop_after=1, progress=False, **RUN)
    # as if killed after metrics.jsonl got a line that last.ckpt does not cover, plus a torn line
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 2, "test_acc": 0.5}) + "\n{\"epoch\": 3, \"trai")
    (run / ".last.ckpt.abc123.tmp").write_bytes(b"half a checkpoint")
    train("spikingresformer_nano", str(run), resume=True, progress=False)
    rows = _lines(run)
    assert [r["epoch"] for r in rows] == [1, 2] and "train_loss" in rows[1]
    assert not list(run.glob(".*.tmp"))


def test_resume_may_add_epochs_but_not_change_the_recipe(tmp_path):
    run = tmp_path / "run"
    train("spikingresformer_nano", str(run), progress=False, **{**RUN, "epochs": 1})
    with pytest.raises(UserError, match="--lr"):
        train("spikingresformer_nano", str(run), resume=True, lr=1.0)
    train("spikingresformer_nano", str(run), resume=True, epochs=2, progress=False)
    assert [r["epoch"] for r in _lines(run)] == [1, 2]
    # the schedule continues from step 3 (48 samples / 16) on the 2-epoch curve
    assert read_checkpoint(run / "last.ckpt")["train_state"]["scheduler"]["total_steps"] == 6


def test_resume_refuses_a_corrupt_or_foreign_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.ckpt").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError):
        train("spikingresformer_nano", str(run), resume=True, **RUN)


@pytest.mark.slow
def test_sigkill_then_resume_finishes_the_run(tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "cli.main", "train", "--model", "spikingresformer_nano", "--out", str(run),
            "--epochs", "3", "--batch-size", "16", "--limit-train", "64", "--limit-test", "16"]
    env = {**os.environ, "SRESFORMER_NO_PROGRESS": "1"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (run / "last.ckpt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no last.ckpt within 120 s"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = read_checkpoint(run / "last.ckpt")["train_state"]["epoch"]
    assert killed_at < 3
    r = subprocess.run(args + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = _lines(run)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert read_checkpoint(run / "last.ckpt")["meta"]["epoch"] == 3
    assert r.stderr.count("epoch ") == 3 - killed_at   # one line per epoch run after the resume
