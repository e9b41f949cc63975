"""No command loses data: outputs never replace inputs, bad paths are refused before work,
interrupted writers leave nothing behind, concurrent writers cannot corrupt a result."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import testutil
from testutil import ROOT, contract_violation, run_cases

ENV = {**os.environ, "SRESFORMER_NO_PROGRESS": "1"}


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A lively nano checkpoint, its NIR file and an official-style state dict, in one folder."""
    import sresformer
    from sresformer.data import open_dataset

    d = tmp_path_factory.mktemp("outputs")
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(16)])
    model = testutil.lively(sresformer.create_model("spikingresformer_nano"), x)
    sresformer.save_checkpoint(model, d / "m.ckpt")
    torch.save(model.state_dict(), d / "official.pth")
    r = testutil.run_cli("export", d / "m.ckpt", "--target", "nir", "--out", d / "m.nir")
    assert r.returncode == 0, r.stderr
    (d / "afile").write_text("not a directory\n")
    for name in ("m.ckpt", "m.nir", "official.pth"):
        os.symlink(d / name, d / f"link-{name}")
        os.link(d / name, d / f"hard-{name}")
    return d


def output_cases(d):
    """(name, argv, input files that must stay unchanged) for every writing command and bad output."""
    ck, nir, off = d / "m.ckpt", d / "m.nir", d / "official.pth"
    writers = {  # command -> (argv with OUT standing for the output, its inputs)
        "eval --save-logits": (["eval", ck, "--limit", "2", "--save-logits", "OUT"], [ck]),
        "import-official": (["import-official", off, "--model", "spikingresformer_nano", "--out", "OUT"], [off]),
        "export nir (ckpt)": (["export", ck, "--target", "nir", "--out", "OUT"], [ck]),
        "export nir (nir)": (["export", nir, "--target", "nir", "--out", "OUT"], [nir]),
        "export onnx": (["export", ck, "--target", "onnx", "--out", "OUT"], [ck]),
        "export loihi": (["export", ck, "--target", "loihi", "--out", "OUT"], [ck]),
        "energy --plot": (["energy", ck, "--limit", "2", "--plot", "OUT"], [ck]),
    }
    bad_outputs = {
        "parent is a file": lambda inputs: d / "afile" / "x.out",
        "a directory": lambda inputs: d,
        "below a file (cannot be created)": lambda inputs: d / "afile" / "sub" / "x.out",
        "on a read-only file system": lambda inputs: "/proc/sresformer-test.out",
        "the input itself": lambda inputs: inputs[0],
        "the input through a symlink": lambda inputs: d / f"link-{inputs[0].name}",
        "the input through a hard link": lambda inputs: d / f"hard-{inputs[0].name}",
    }
    for wname, (argv, inputs) in writers.items():
        for bname, make in bad_outputs.items():
            out = make(inputs)
            yield f"{wname}: {bname}", [out if a == "OUT" else a for a in argv], inputs
    # train's output is a directory
    for bname, out in {"parent is a file": d / "afile" / "run", "a file": d / "afile",
                       "on a read-only file system": "/proc/sresformer-run"}.items():
        yield f"train --out: {bname}", ["train", "--model", "spikingresformer_nano", "--out", out,
                                        "--limit-train", "8", "--limit-test", "8", "--epochs", "1"], []


def test_no_output_replaces_an_input_or_lands_where_it_cannot(work):
    cases = list(output_cases(work))
    before = {p: digest(p) for p in work.iterdir() if p.is_file() and not p.is_symlink()}
    names = sorted(p.name for p in work.iterdir())
    (work.parent / "outputs-cases").mkdir()
    results = run_cases([argv for _, argv, _ in cases], work.parent / "outputs-cases", timeout_s=60)
    bad = []
    for (name, _, _), rec in zip(cases, results, strict=True):
        why = contract_violation(rec) or (None if rec["rc"] == 2 else f"exit {rec['rc']}, want 2")
        if why:
            bad.append(f"{name}: {why}")
    assert not bad, f"{len(bad)} of {len(cases)} cases:\n" + "\n".join(bad)
    assert {p: digest(p) for p in before} == before, "an input changed"
    assert sorted(p.name for p in work.iterdir()) == names, "a refused command left a file"
    assert len(cases) >= 50


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a mode-555 directory anyway; the read-only "
                                              "file system case above covers root")
def test_read_only_directory_is_refused_before_work(work, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    r = testutil.run_cli("export", work / "m.ckpt", "--target", "nir", "--out", ro / "m.nir")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not writable" in r.stderr
    assert not list(ro.iterdir())


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "cli.main", *map(str, args)], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("sig,status,word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")])
def test_signal_during_the_artifact_write_leaves_no_file(work, tmp_path, sig, status, word):
    """The signal arrives while the HDF5 temporary is being written (h5py holds the GIL there)."""
    out = tmp_path / "m.loihi"
    proc = _start(["export", work / "m.ckpt", "--target", "loihi", "--out", out], ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "export ended before its temporary appeared"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, (proc.returncode, err)
    assert err.strip().splitlines() == [f"sresformer: {word}; no partial output was left"], err
    assert list(tmp_path.iterdir()) == []
    # the next run works
    r = testutil.run_cli("export", work / "m.ckpt", "--target", "nir", "--out", tmp_path / "m.nir")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("sig,status,word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")])
def test_a_library_error_after_a_signal_is_the_interruption(monkeypatch, capsys, sig, status, word):
    """h5py can turn the signal's exception into a TypeError of its own (seen in CI); once a signal
    has arrived that error is the interruption, in one line, and without a signal it stays a bug."""
    from cli import main as cli_main
    from sresformer import interrupt

    def h5py_like(**_kw):
        raise TypeError("Operation not defined for data type class")

    monkeypatch.setattr(cli_main.cli, "main", h5py_like)
    with pytest.raises(TypeError):
        cli_main.run(["export"])
    monkeypatch.setattr(interrupt, "_received", [sig])
    assert cli_main.run(["export"]) == status
    assert capsys.readouterr().err.splitlines() == [f"sresformer: {word}; no partial output was left"]


def test_a_killed_writers_temporary_is_removed_by_the_next_write(work, tmp_path):
    out = tmp_path / "m.nir"
    dead = tmp_path / ".m.nir.999999999.abcd1234.tmp"      # no such pid: its writer is gone
    live = tmp_path / f".m.nir.{os.getpid()}.abcd1234.tmp"  # this test's pid: a live writer
    other = tmp_path / ".other.nir.999999999.abcd1234.tmp"  # another file's temporary
    for p in (dead, live, other):
        p.write_bytes(b"partial")
    r = testutil.run_cli("export", work / "m.ckpt", "--target", "nir", "--out", out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.nir", live.name, other.name])


@pytest.mark.slow
def test_concurrent_exports_to_one_path_end_in_one_complete_file(work, tmp_path):
    import nir

    out = tmp_path / "m.nir"
    procs = [_start(["export", work / "m.ckpt", "--target", "nir", "--out", out], ROOT) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert [q.name for q in tmp_path.iterdir()] == ["m.nir"]
    solo = tmp_path.parent / "solo.nir"
    assert testutil.run_cli("export", work / "m.ckpt", "--target", "nir", "--out", solo).returncode == 0
    assert set(nir.read(out).nodes) == set(nir.read(solo).nodes)


@pytest.mark.slow
def test_a_second_train_into_a_live_run_directory_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", "--model", "spikingresformer_nano", "--data", "digits", "--out", run_dir,
            "--epochs", "50", "--limit-train", "64", "--limit-test", "16", "--batch-size", "16"]
    first = _start(args, ROOT)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "last.ckpt").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()[1]
        second = testutil.run_cli(*args, "--resume", timeout=120)
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip().splitlines() == [
            f"sresformer: error: run directory {run_dir} is in use by another sresformer process; wait for it "
            "to end or choose another directory"]
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130
    assert err.strip().splitlines()[-1].startswith("sresformer: interrupted;") and "--resume" in err
    # after the first run is gone, the run continues with --resume
    third = testutil.run_cli(*args[:args.index("--epochs")], "--epochs", "1", "--limit-train", "64",
                             "--limit-test", "16", "--batch-size", "16", "--resume", timeout=300)
    assert third.returncode == 0, third.stderr


def test_foreign_files_given_as_checkpoints_are_named_for_what_they_are(work, tmp_path):
    import numpy as np

    np.save(tmp_path / "logits.npy", np.zeros((2, 3), np.float32))
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")
    r = testutil.run_cli("export", work / "m.ckpt", "--target", "loihi", "--out", tmp_path / "m.loihi")
    assert r.returncode == 0, r.stderr
    expect = {"logits.npy": "NumPy .npy array", "m.onnx": "ONNX model", "m.loihi": ".loihi chip artifact"}
    cases = [["import-official", tmp_path / name, "--model", "spikingresformer_nano", "--out", tmp_path / "x.ckpt"]
             for name in expect] + [["eval", tmp_path / name] for name in expect]
    for rec in run_cases(cases, tmp_path, timeout_s=60):
        name = os.path.basename(str(rec["args"][1]))
        assert contract_violation(rec) is None and rec["rc"] == 2, rec
        assert expect[name] in rec["stderr"] and "weights_only" not in rec["stderr"], rec["stderr"]
    assert not (tmp_path / "x.ckpt").exists()
