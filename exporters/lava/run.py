"""Run an artifact in Lava (a subprocess with a hard timeout) and compare it with ``hw_sim.executor``.

:func:`compare_lava` runs the samples through our executor and through the Lava graph
(:mod:`exporters.lava.worker`), then compares every neuron's spikes at every step and the output's
integers. ``agreement`` is the fraction of samples on which all of them are equal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from .build import graph_of, lava_missing
from .plan import LavaError, plan_graph

ROOT = Path(__file__).resolve().parents[2]   # the repository root: the worker imports our packages from it
TIMEOUT_S = 300


def run_worker(artifact: str, x_int: np.ndarray, timeout_s: float = TIMEOUT_S, raw: bool = False) -> dict:
    """Lava's integers ``[N, T, ...]`` per recorded process (``raw``: also its traces, ``worker.collect``);
    :class:`LavaError` (one line) when the run fails."""
    with tempfile.TemporaryDirectory(prefix="sresformer-lava-") as tmp:
        inp, out = os.path.join(tmp, "in.npy"), os.path.join(tmp, "out.npz")
        np.save(inp, x_int.astype(np.int64))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, "-m", "exporters.lava.worker", os.fspath(artifact), inp, out, "1" if raw else "0"]
        code, err = run_isolated(cmd, env, os.path.join(tmp, "err.txt"), timeout_s)
        if code is None:
            raise LavaError(f"the Lava run did not finish in {timeout_s:g} s (killed); try fewer samples "
                            "(--limit)")
        if code != 0:
            lines = [ln for ln in err.strip().splitlines() if ln.strip()]
            mine = [ln for ln in lines if ln.startswith("Lava run failed:")]
            raise LavaError(mine[-1] if mine else f"the Lava worker exited with status {code}: "
                            f"{lines[-1] if lines else 'no output'}")
        with np.load(out) as f:
            return {k: f[k] for k in f.files}


def run_isolated(cmd, env, err_path: str, timeout_s: float) -> tuple[int | None, str]:
    """Run ``cmd`` in a session of its own (stderr to a file, not a pipe that Lava's actor processes would hold
    open), wait for it at most ``timeout_s``, then kill whatever of its process group is left (Lava's actors
    outlive a worker that failed or hung). Returns the exit status (``None``: killed at the timeout) and stderr."""
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # the group this call started (its id is the worker's pid)
            except ProcessLookupError:
                pass
            proc.wait()
    with open(err_path) as f:
        return code, f.read()


def first_mismatch(pg, ours: dict[str, np.ndarray], lava: dict[str, np.ndarray]) -> dict | None:
    """The first differing value in graph order: process, sample, step and flat index (ours, C order)."""
    for p in pg:
        if p.name not in lava:
            continue
        diff = ours[p.name] != lava[p.name]
        if diff.any():
            s, t, *idx = np.argwhere(diff)[0]
            flat = int(np.ravel_multi_index(tuple(idx), p.out_shape)) if idx else 0
            return {"process": p.name, "sample": int(s), "step": int(t), "index": flat,
                    "ours": int(ours[p.name][(s, t, *idx)]), "lava": int(lava[p.name][(s, t, *idx)])}
    return None


def compare_lava(source, x: torch.Tensor, timeout_s: float = TIMEOUT_S) -> dict:
    """Run images ``x [N, *input_shape]`` through the executor and Lava; agreement and the first mismatch.

    ``source``: a ``.loihi`` path. Returns ``{"samples", "agreement", "first_mismatch", "processes",
    "spikes"}`` (``processes``: how many were compared; ``spikes``: our spike count over them, so a silent
    model, which would agree trivially, is visible).
    """
    why = lava_missing()
    if why:
        raise LavaError(why)
    from hw_sim.executor import Executor

    pg = graph_of(source)
    plan_graph(pg)   # refuse in this process, before a worker starts
    if x.dim() != len(pg.input_shape) + 1:
        raise LavaError("the Lava graph takes static images [N, *input_shape]; frame sequences are not built yet")
    res = Executor(pg).run(x, keep=True)
    inp = next(p.name for p in pg if p.kind == "input")
    x_int = res.values[inp][0].numpy().astype(np.int64)
    lava = run_worker(source, x_int, timeout_s)
    ours = {k: res.values[k].expand(pg.T, *res.values[k].shape[1:]).transpose(0, 1).numpy().astype(np.int64)
            for k in lava}
    equal = np.ones(x.shape[0], bool)
    for k, v in lava.items():
        equal &= (ours[k] == v).reshape(v.shape[0], -1).all(1)
    spikes = int(sum(ours[k].sum() for k in lava if pg.processes[k].kind == "neuron"))
    return {"samples": int(x.shape[0]), "agreement": float(equal.mean()), "first_mismatch": first_mismatch(pg, ours,
            lava), "processes": len(lava), "spikes": spikes}


LAVA_LIMIT = 4   # default samples for --backend lava: Lava's Python models run ~1000x slower than our executor


def simulate_lava(artifact: str, data: str, limit: int | None, grid: bool = False) -> dict:
    """``simulate --backend lava``: the first ``limit`` (default 4) test samples of ``data`` through Lava and the
    executor; the :func:`compare_lava` summary with ``backend`` and ``data``. ``grid``: the artifact was made
    from a model here (not given): both run it on Lava's grid (:func:`exporters.lava.grid.lava_grid`), as
    ``export --target lava`` writes it."""
    why = lava_missing()
    if why:
        raise LavaError(why)
    from hw_sim.artifact import read_artifact, write_artifact
    from hw_sim.simulate import open_test_data

    from .grid import lava_grid

    with tempfile.TemporaryDirectory(prefix="sresformer-lava-") as tmp:
        if grid:
            pg, mapping, report = read_artifact(artifact)
            artifact = os.path.join(tmp, "grid.loihi")
            write_artifact(artifact, lava_grid(pg), mapping, report)
        pg = graph_of(artifact)
        plan_graph(pg)
        dataset, _ = open_test_data(pg, data, limit or LAVA_LIMIT)
        x = torch.stack([dataset[i][0] for i in range(len(dataset))])
        return {"backend": "lava", "data": data, "grid": grid, **compare_lava(artifact, x)}


def human(s: dict) -> str:
    """The ``--backend lava`` summary as lines for a terminal."""
    m = s["first_mismatch"]
    first = "none" if m is None else (f"process {m['process']!r}, sample {m['sample']}, step {m['step']}, "
                                      f"index {m['index']} (ours {m['ours']}, Lava {m['lava']})")
    return "\n".join([f"agreement  {s['agreement']:.2%} of {s['samples']} {s['data']} samples spike-equal to "
                      f"hw_sim's executor ({s['processes']} processes, {s['spikes']} spikes compared)",
                      f"first mismatch {first}"])
