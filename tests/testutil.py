"""Helpers shared by the test modules (imported as ``testutil``; tests/ is on sys.path via its conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def warm_up(model, x, steps: int = 2):
    """A few no-grad training-mode forwards: BN statistics and DSSA rates become realistic."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    return model.eval()


def lively(model, x):
    """A warmed-up model whose layers fire (random init alone leaves the deep layers silent)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.mul_(2.0)
                m.bias.add_(0.5)
    return warm_up(model, x, steps=2)


def lively_spikformer_nano():
    """Spikformer nano at 16 x 16, T = 2, every BN at gamma 2, beta 1.2 and warmed up: all its layers fire."""
    import sresformer

    model = sresformer.create_model("spikformer_nano", num_classes=10, img_size=16, T=2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.fill_(2.0)
                m.bias.fill_(1.2)
    return warm_up(model, torch.rand(4, 3, 16, 16) * 2)


def export_small(source, out, **kw):
    """``export_loihi`` with a short calibration (16 images) and accuracy check (8): for tests of later stages."""
    from exporters.loihi.export import export_loihi

    export_loihi(str(source), out, calib_images=16, eval_images=8, **kw)
    return out


def lively_nano_checkpoint(directory: Path, seed: int | None = None) -> Path:
    """``directory/m.ckpt``: a lively (firing) nano SpikingResformer, warmed up on 16 digits images
    (``seed``: the torch seed its weights are drawn with, else the current generator's state)."""
    import sresformer
    from sresformer.data import open_dataset

    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(16)])
    if seed is not None:
        torch.manual_seed(seed)
    sresformer.save_checkpoint(lively(sresformer.create_model("spikingresformer_nano"), x), directory / "m.ckpt")
    return directory / "m.ckpt"


def lively_nano_artifact(directory: Path) -> Path:
    """A .loihi artifact of a lively (firing) nano SpikingResformer, calibrated on 16 digits images."""
    return export_small(lively_nano_checkpoint(directory), directory / "m.loihi")


def train_step(name: str, img: int, num_classes: int = 5, T: int = 2):
    """A fresh registered model after one training-mode forward and backward: ``(model, x, logits)``."""
    import sresformer

    model = sresformer.create_model(name, num_classes=num_classes, img_size=img, T=T)
    x = torch.randn(2, 3, img, img)
    model.train()
    out = model(x)
    out.sum().backward()
    return model, x, out


# -- an independent implementation of the random spike gate (sresformer.spike_gate) ----------------

M32 = np.uint64(0xFFFFFFFF)


def np_lowbias32(x):
    """Wellons' lowbias32 written directly on numpy uint64 (products of 32-bit values fit 64 bits)."""
    x = x.astype(np.uint64)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & M32
    return x ^ (x >> np.uint64(16))


def np_keep(ratio, seed, gate_id, t, idx):
    """Keep decisions of the gate at step ``t`` for flat indices ``idx``, from the FORMAT.md definition."""
    h = np_lowbias32(np.asarray(t, np.uint64) ^ np_lowbias32(np.asarray(gate_id, np.uint64)
                                                             ^ np_lowbias32(np.asarray(seed, np.uint64))))
    return np_lowbias32(np.asarray(idx, np.uint64) ^ h) >= np.uint64(round(ratio * 2 ** 32))


def run_cli(*args, timeout=None):
    """``python -m cli.main ARGS`` in a subprocess: the CompletedProcess with text stdout and stderr."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "cli.main", *[str(a) for a in args]], capture_output=True,
                          text=True, timeout=timeout)


def run_cli_here(*args):
    """The CLI on ARGS in this process (``cli.main.run``, the console entry point without its ``sys.exit``):
    the CompletedProcess with its exit status and text stdout and stderr. Spares a subprocess's torch import
    (seconds each) where the test is about what a command prints, not about the process around it."""
    import contextlib
    import io
    import subprocess

    from cli.main import run

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = run(argv)
    return subprocess.CompletedProcess(argv, status, out.getvalue(), err.getvalue())


def synapse_ops_by_hand(p, values) -> float:
    """Ops of synapse process ``p`` recounted from its inputs: the fan-out of every non-zero input
    through the non-zero stored weights (a conv / matmul of the non-zero mask with ``|W| > 0``)."""
    import torch.nn.functional as F

    nz = (sum(values[s] for s in p.sources) != 0).double().flatten(0, 1)
    w = torch.from_numpy(p.params["weight"] != 0).double()
    a = p.attrs
    if a.op == "conv":
        return float(F.conv2d(nz, w, None, a.stride, a.padding, a.dilation, a.groups).sum())
    return float((nz.flatten(1) @ w.T).sum())


# -- crafted-input cases: many command lines in one capped worker (tests/crafted_runner.py) --------

def run_cases(cases, tmp_path, timeout_s: int = 30, mem_gib: float = 6, total_timeout: float | None = None):
    """Run each ``sresformer`` argument list of ``cases`` in one worker under a memory cap.

    Returns one dict per case: ``rc``, ``stdout``, ``stderr``, ``traceback`` (text or None) and
    ``timeout`` (the case ran past ``timeout_s``). The worker as a whole gets ``total_timeout``
    (default: every case's time plus a minute), so a hang fails the test, not the machine.
    """
    import json
    import subprocess
    import sys

    spec = tmp_path / "cases.json"
    res = tmp_path / "results.json"
    spec.write_text(json.dumps({"timeout_s": timeout_s, "mem_gib": mem_gib,
                                "cases": [[str(a) for a in c] for c in cases]}))
    total = total_timeout if total_timeout is not None else timeout_s * len(cases) + 60
    subprocess.run([sys.executable, str(ROOT / "tests" / "crafted_runner.py"), str(spec), str(res)],
                   cwd=ROOT, check=True, timeout=total)
    return json.loads(res.read_text())


def contract_violation(rec) -> str | None:
    """Why a case's result breaks the bad-input contract, or None if it keeps it.

    The contract: exit 2 with exactly one line on stderr and no traceback; or exit 0 (a
    correct result, for mutations that leave the input valid). Never a hang or a traceback.
    """
    if rec["timeout"]:
        return "ran past its time (hang)"
    if rec["traceback"]:
        return "traceback: " + rec["traceback"].strip().splitlines()[-1]
    if rec["rc"] == 0:
        return None
    lines = [ln for ln in rec["stderr"].splitlines() if ln.strip()]
    if rec["rc"] != 2:
        return f"exit status {rec['rc']} (want 2): {rec['stderr'].strip()[-300:]}"
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr (want 1): {rec['stderr'].strip()[-300:]}"
    if "Traceback" in rec["stderr"]:
        return "traceback on stderr"
    return None


def removed(key):
    """A crafted-file mutation: ``del container[key]`` (an h5py file or group, or a checkpoint dict)."""
    def fn(container):
        del container[key]
    return fn


def export_runs(name, expected, path, out_stem, nir=False, loihi=False):
    """Crafted-case command lines that export ``path`` (to NIR and/or Loihi) beside ``out_stem``."""
    runs = []
    if nir:
        out = out_stem.parent / (out_stem.name + ".nir")
        runs.append((name + " [export nir]", expected, ["export", path, "--target", "nir", "--out", out], out))
    if loihi:
        out = out_stem.parent / (out_stem.name + ".loihi")
        runs.append((name + " [export loihi]", expected, ["export", path, "--target", "loihi", "--out", out,
                                                          "--calib-data", "synthetic"], out))
    return runs


def failed_runs(runs, results, refuse: int = 2) -> list[str]:
    """Why each crafted run ``(name, expected exit, argv, output or None)`` failed, given its result.

    A run fails when it breaks the contract (:func:`contract_violation`), ends with another
    exit status than expected, or is refused yet left its output file behind.
    """
    failures = []
    for (name, expected, _args, out), rec in zip(runs, results, strict=True):
        why = contract_violation(rec)
        if why is None and rec["rc"] != expected:
            why = f"exit {rec['rc']}, want {expected}: {rec['stderr'].strip()[-200:]}"
        if why is None and expected == refuse and out is not None and out.exists():
            why = f"refused but wrote {out.name}"
        if why is not None:
            failures.append(f"{name}: {why}")
    return failures


def write_toy_nir(path) -> Path:
    """A conv + LIF + dense NIR model on 1 x 8 x 8 inputs (seed 0, conv weights x 4 so it fires);
    it exports to a chip artifact in seconds."""
    from torch import nn

    from exporters.nir.export import export_graph, write_graph
    from sresformer.layers import SeqConv2d, SeqLinear
    from sresformer.neurons import LIF

    torch.manual_seed(0)
    net = nn.Sequential(SeqConv2d(1, 4, 3, padding=1), LIF(), nn.Flatten(), SeqLinear(4 * 8 * 8, 10))
    with torch.no_grad():
        net[0].weight.mul_(4.0)
    write_graph(export_graph(net, (1, 8, 8)), path)
    return Path(path)


def set_dataset(path: str, value):
    """An HDF5 mutation for crafted-file tables: replace (or create) the dataset at ``path``."""
    def fn(f):
        if path in f:
            del f[path]
        f[path] = value
    return fn


def one_line_error(r, *words):
    """Assert the bad-input contract on a CompletedProcess: exit 2, one stderr line holding ``words``, no traceback."""
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
