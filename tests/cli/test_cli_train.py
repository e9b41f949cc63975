"""CLI train/eval: a real run, bad input as one stderr line with exit 2, and a 2-process DDP run."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NANO = ["--model", "spikingresformer_nano"]
TINY = ["--epochs", "1", "--batch-size", "16", "--limit-train", "32", "--limit-test", "16"]
ENV = {**os.environ, "SRESFORMER_NO_PROGRESS": "1"}


def run(*args):
    """The CLI in this process (testutil.run_cli_here): what train and eval print and write is tested here;
    the process around them in the torchrun test and in test_cli_outputs (signals, a second writer)."""
    from testutil import run_cli_here

    return run_cli_here(*args)


def one_error_line(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert all(n in lines[0] for n in needles), lines[0]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    r = run("train", *NANO, "--data", "digits", "--out", str(out), *TINY)
    assert r.returncode == 0, r.stderr
    return out, r


def test_train_writes_the_run_directory(cli_run):
    out, r = cli_run
    # .lock: the run directory's flock file (sresformer.fileio.directory_lock), empty
    assert {p.name for p in out.iterdir()} == {"last.ckpt", "best.ckpt", "metrics.jsonl", ".lock"}
    assert (out / ".lock").stat().st_size == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["world_size"] == 1
    assert r.stderr.startswith("epoch 1/1 ") and len(r.stderr.strip().splitlines()) == 1
    assert str(out) in r.stdout and "test accuracy" in r.stdout


@pytest.mark.parametrize("args, needles", [
    (["--model", "nope", "--data", "digits"], ["unknown model 'nope'"]),
    (NANO + ["--data", "mnist"], ["unknown dataset 'mnist'"]),
    (NANO + ["--data", "folder:/no/such/dir"], ["/no/such/dir"]),
])
def test_train_bad_input(tmp_path, args, needles):
    out = tmp_path / "run"
    one_error_line(run("train", *args, "--out", str(out), *TINY), *needles)
    assert not out.exists()


def test_train_resume_bad_checkpoint_and_other_model(cli_run, tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    one_error_line(run("train", *NANO, "--out", str(corrupt), "--resume", *TINY), "last.ckpt")
    other = tmp_path / "other"
    shutil.copytree(cli_run[0], other)
    one_error_line(run("train", "--model", "spikingresformer_cifar", "--out", str(other), "--resume"),
                   "spikingresformer_nano", "--model")


def test_eval_bad_input(tmp_path):
    one_error_line(run("eval", str(tmp_path / "missing.ckpt"), "--json"), "does not exist")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"garbage" * 10)
    logits = tmp_path / "l.npy"
    r = run("eval", str(bad), "--json", "--save-logits", str(logits))
    one_error_line(r, "bad.ckpt")
    assert r.stdout == "" and not logits.exists()


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "cli.main", "train", *NANO, "--out", str(out), "--epochs", "1", "--batch-size", "8",
           "--limit-train", "32", "--limit-test", "10"]
    env = {**ENV, "OMP_NUM_THREADS": "1"}
    # own session: on a timeout the workers die with the launcher instead of lingering
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["world_size"] == 2
    from sresformer import read_checkpoint
    ckpt = read_checkpoint(out / "last.ckpt")
    assert ckpt["meta"]["world_size"] == 2 and ckpt["meta"]["test_samples"] == 10   # shards summed, no padding
    assert len(ckpt["train_state"]["rng"]) == 2 and stdout.count("test accuracy") == 1
