"""A tiny run's files: metrics lines, checkpoint meta (accuracy, firing rates), defaults, refusals."""

import json

import pytest
import torch
from torch.utils.data import DataLoader

from sresformer import load_checkpoint, read_checkpoint
from sresformer.data import open_dataset
from sresformer.errors import UserError
from sresformer.evaluate import evaluate, limited
from sresformer.firing import measure_firing_rates
from sresformer.train import recipe_for, resolve_config, train, warmup_cosine_lr

KEYS = {"epoch", "train_loss", "train_acc", "test_acc", "images_per_s", "seconds", "world_size", "lr"}


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_metrics_file_has_one_line_per_epoch(tiny_run):
    run, summary = tiny_run
    rows = _metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2] and all(set(r) == KEYS for r in rows)
    assert all(r["world_size"] == 1 and r["images_per_s"] > 0 and r["seconds"] > 0 for r in rows)
    assert all(0 <= r["train_acc"] <= 1 and 0 <= r["test_acc"] <= 1 and r["train_loss"] > 0 for r in rows)
    # lr: the epoch's last step on the warm-up + cosine curve; 64 samples / 32 = 2 steps per epoch
    curve = dict(base_lr=2e-3, total_steps=4, warmup_steps=2, warmup_lr=1e-5, min_lr=1e-5)
    assert recipe_for("spikingresformer_nano", "digits")["lr"] == 2e-3
    assert [r["lr"] for r in rows] == pytest.approx([warmup_cosine_lr(s, **curve) for s in (1, 3)])
    # the test accuracy is a count over the 48 test samples
    assert all(round(r["test_acc"] * 48, 9) == round(r["test_acc"] * 48) for r in rows)
    assert summary["final_accuracy"] == rows[-1]["test_acc"]
    assert summary["best_accuracy"] == max(r["test_acc"] for r in rows)


def test_checkpoint_meta_matches_independent_evaluation(tiny_run, tiny_args):
    run, _ = tiny_run
    rows = _metrics(run)
    last = read_checkpoint(run / "last.ckpt")
    meta = last["meta"]
    assert meta["epoch"] == 2 and meta["data"] == "digits" and meta["T"] == 4 and meta["img_size"] == 32
    assert meta["train_args"]["limit_train"] == tiny_args["limit_train"] and meta["accuracy"] == rows[-1]["test_acc"]
    assert last["train_state"]["epoch"] == 2 and len(last["train_state"]["metrics"]) == 2
    best = read_checkpoint(run / "best.ckpt")
    assert best["meta"]["accuracy"] == max(r["test_acc"] for r in rows) and "train_state" not in best

    # re-evaluate the saved model: same accuracy and the same firing rates
    model = load_checkpoint(run / "last.ckpt")
    test = limited(open_dataset("digits", augment=False).test, tiny_args["limit_test"])
    result = evaluate(model, test, batch_size=16)
    assert result.samples == 48 and result.accuracy == pytest.approx(meta["accuracy"], abs=1e-12)
    rates = measure_firing_rates(model, DataLoader(test, batch_size=20))
    assert set(rates) == set(meta["firing_rates"]) and len(rates) > 10
    for name, r in rates.items():
        assert meta["firing_rates"][name] == pytest.approx(r, abs=1e-9), name


def test_defaults_table_and_overrides():
    assert recipe_for("spikingresformer_ti", "folder")["lr"] == 1e-3            # official ImageNet
    assert recipe_for("spikingresformer_cifar", "cifar10")["epochs"] == 600      # official CIFAR
    assert recipe_for("spikingresformer_dvsg", "frames")["weight_decay"] == 0.05  # official DVS
    cfg = resolve_config("spikingresformer_nano", "/tmp/x", None, epochs=3, lr=1e-4)
    assert (cfg.data, cfg.epochs, cfg.lr, cfg.batch_size, cfg.label_smoothing) == ("digits", 3, 1e-4, 64, 0.1)


def test_existing_run_is_not_overwritten(tiny_run, tiny_args):
    run, _ = tiny_run
    before = (run / "last.ckpt").read_bytes()
    with pytest.raises(UserError, match="--resume"):
        train("spikingresformer_nano", str(run), "digits", **tiny_args)
    assert (run / "last.ckpt").read_bytes() == before


def test_resume_of_a_finished_run_changes_nothing(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(tiny_run[0], run)
    summary = train("spikingresformer_nano", str(run), resume=True, progress=False)
    assert summary["epochs_completed"] == 2 and len(_metrics(run)) == 2
    a, b = read_checkpoint(run / "last.ckpt"), read_checkpoint(tiny_run[0] / "last.ckpt")
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_frames_sequences_train_time_major(tmp_path):
    """Event frames [B, T, C, H, W] from the loader reach the model as [T, B, ...]; T comes from the file."""
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "f.npz", frames=rng.poisson(0.5, (12, 3, 2, 32, 32)).astype(np.uint8),
             labels=np.arange(12) % 3)
    summary = train("spikingresformer_nano", str(tmp_path / "run"), f"frames:{tmp_path / 'f.npz'}", epochs=1,
                    batch_size=4, progress=False)
    ckpt = read_checkpoint(tmp_path / "run" / "last.ckpt")
    assert ckpt["model_kwargs"]["T"] == 3 and ckpt["meta"]["T"] == 3 and ckpt["model_kwargs"]["num_classes"] == 3
    assert summary["epochs_completed"] == 1 and ckpt["meta"]["firing_rates"]
