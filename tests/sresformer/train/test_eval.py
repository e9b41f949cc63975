"""Evaluation: accuracy against argmax computed by hand on the saved logits; top-k counting."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sresformer import load_checkpoint
from sresformer.data import open_dataset
from sresformer.evaluate import evaluate, topk_correct
from testutil import run_cli_here

ROOT = Path(__file__).resolve().parents[3]


def test_topk_correct_by_hand():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.3], [0.2, 0.3, 0.5]])
    target = torch.tensor([1, 2, 0])
    assert topk_correct(logits, target, 1) == 1          # only row 0
    assert topk_correct(logits, target, 2) == 2          # row 1: 2 is second; row 2: 0 is last
    assert topk_correct(logits, target, 5) == 3          # k is capped at the class count


def test_eval_cli_json_and_logits_agree_with_hand_argmax(tiny_run, tmp_path):
    run, _ = tiny_run
    logits_path = tmp_path / "logits.npy"
    r = subprocess.run([sys.executable, "-m", "cli.main", "eval", str(run / "best.ckpt"), "--data", "digits",
                        "--json", "--save-logits", str(logits_path), "--limit", "50", "--batch-size", "16"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)                      # exactly one JSON object and nothing else
    assert r.stdout.strip().count("\n") == 0
    logits = np.load(logits_path)
    assert logits.dtype == np.float32 and logits.shape == (50, 10)
    labels = np.array([open_dataset("digits", augment=False).test[i][1] for i in range(50)])
    assert out["samples"] == 50 and out["correct"] == int((logits.argmax(1) == labels).sum())
    assert out["accuracy"] == pytest.approx((logits.argmax(1) == labels).mean(), abs=1e-12)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert out["top5"] == pytest.approx((top5 == labels[:, None]).any(1).mean(), abs=1e-12)
    # the same logits as the library gives, in dataset order
    model = load_checkpoint(run / "best.ckpt")
    lib = evaluate(model, open_dataset("digits", augment=False).test, limit=50, batch_size=50, keep_logits=True)
    assert np.allclose(lib.logits.numpy(), logits, atol=1e-5)


def test_eval_cli_text_output(tiny_run):
    run, _ = tiny_run
    r = run_cli_here("eval", run / "last.ckpt", "--limit", "20")   # in this process: the text is tested
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("accuracy ") and "top-5" in r.stdout and "samples  20" in r.stdout
