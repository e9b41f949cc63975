"""``simulate`` under torchrun (torch.distributed, gloo) and ``--out`` / ``--resume``: the sharded, the
killed-and-resumed and the uninterrupted runs give the same summary and results file, byte for byte.

The reference is the plain single-process run (its loop adds each batch's sums in sample order,
the code path the sharded run must reproduce); the per-sample records are recounted by hand
against the summary's accuracy and agreement."""

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest
from click.testing import CliRunner

from cli.main import cli
from testutil import write_toy_nir

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

# 20 samples in batches of 3: 7 batches, the last one of 2 (a shard must keep that batching)
ARGS = ["--limit", "20", "--batch-size", "3", "--json"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SRESFORMER_NO_PROGRESS": "1"}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    from exporters.loihi.export import export_loihi

    d = tmp_path_factory.mktemp("dist")
    out = d / "toy.loihi"
    export_loihi(str(write_toy_nir(d / "toy.nir")), str(out), calib_data="digits")
    return out


def sim(artifact, *extra, nproc=None, env=None):
    """``sresformer simulate`` in subprocesses: plain, or under ``torch.distributed.run`` with ``nproc``."""
    launch = [] if nproc is None else ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    cmd = [sys.executable, *launch, "-m", "cli.main", "simulate", str(artifact), *ARGS, *map(str, extra)]
    return subprocess.run(cmd, capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=240)


@pytest.fixture(scope="module")
def single(artifact, tmp_path_factory):
    """The uninterrupted single-process run: its summary and its results file's bytes."""
    out = tmp_path_factory.mktemp("single") / "r.jsonl"
    r = sim(artifact, "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout), out.read_bytes()


def records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()[1:]]


@pytest.mark.slow
def test_two_processes_equal_one(artifact, single, tmp_path):
    summary, results = single
    out = tmp_path / "r.jsonl"
    r = sim(artifact, "--out", out, nproc=2)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(r.stdout.strip().splitlines()) == 1   # only rank 0 prints
    assert json.loads(r.stdout) == summary           # no wall-clock keys in the summary: every key, exactly
    assert out.read_bytes() == results               # rank 0 wrote every rank's batches, in batch order
    recs = records(results)
    assert [rec["index"] for rec in recs] == list(range(20))
    assert sum("sums" in rec for rec in recs) == 7
    assert summary["accuracy"] == sum(rec["label"] == rec["prediction"] for rec in recs) / 20
    assert summary["agreement"] == sum(rec["agreed"] for rec in recs) / 20
    assert summary["samples"] == sum(rec["sums"]["n"] for rec in recs if "sums" in rec)
    lat = 0.0
    for rec in recs:   # the merge contract restated: float sums added batch by batch, in batch order
        lat += rec["sums"]["lat"] if "sums" in rec else 0.0
    assert summary["latency_zero_delay_s"] == lat / 20
    # one batch of 20, no merge at all: the integer-valued counts equal the merged 7 batches' exactly,
    # the float sums of non-integers (latencies, step times) to rounding
    whole = CliRunner().invoke(cli, ["simulate", str(artifact), *ARGS, "--batch-size", "20"])
    assert whole.exit_code == 0, whole.stderr
    whole = json.loads(whole.stdout)
    for key in ("accuracy", "agreement", "ac", "mac", "counts", "layers", "saturated"):
        assert whole[key] == summary[key], key
    assert whole["per_step"]["spikes"] == summary["per_step"]["spikes"]
    for key in ("latency_pipelined_s", "latency_zero_delay_s", "energy_j"):
        assert whole[key] == pytest.approx(summary[key], rel=1e-12), key


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(artifact, single, tmp_path):
    summary, results = single
    out = tmp_path / "r.jsonl"
    killed = sim(artifact, "--out", out, env={"SRESFORMER_FAULT_EXIT_AFTER_BATCHES": "3"})
    assert killed.returncode == 137 and not killed.stdout
    lines = out.read_bytes().splitlines(keepends=True)
    assert len(lines) == 1 + 9                       # the header and the 3 batches of 3 it finished
    torn = results[len(b"".join(lines)):][:40]       # a cut write of the next batch, no final newline
    out.write_bytes(b"".join(lines) + torn)
    r = sim(artifact, "--out", out, "--resume", nproc=2)   # resumed with another process count
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout) == summary
    assert out.read_bytes() == results               # nothing redone, nothing counted twice
    again = sim(artifact, "--out", out, "--resume")  # a finished file: nothing left to run
    assert again.returncode == 0 and json.loads(again.stdout) == summary and out.read_bytes() == results


def _cases(results: bytes) -> dict[str, bytes]:
    head, *body = results.splitlines(keepends=True)
    foreign = json.dumps({"format": "something-else"}).encode() + b"\n"
    other_run = head.replace(b'"batch_size": 3', b'"batch_size": 4')
    no_sums = json.loads(body[2])
    del no_sums["sums"]
    return {"garbage line": head + body[0] + b"not json\n",
            "foreign file": foreign + b"".join(body),
            "other run": other_run + b"".join(body),
            "repeated sample": head + b"".join(body[:3]) + b"".join(body[:3]),
            "batch without sums": head + b"".join(body[:2]) + json.dumps(no_sums).encode() + b"\n"
                                  + b"".join(body[3:6])}


@pytest.mark.slow
def test_a_bad_results_file_is_refused_in_one_line(artifact, single, tmp_path):
    _, results = single
    runner = CliRunner()
    for name, data in _cases(results).items():
        out = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        out.write_bytes(data)
        r = runner.invoke(cli, ["simulate", str(artifact), *ARGS, "--out", str(out), "--resume"])
        assert r.exit_code == 2, (name, r.output)
        assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, (name, r.stderr)
        assert r.stderr.startswith("sresformer: error: ") and str(out) in r.stderr, (name, r.stderr)
        assert out.read_bytes() == data, name            # a refused file is left as it was
    existing = tmp_path / "exists.jsonl"
    existing.write_bytes(results)
    r = runner.invoke(cli, ["simulate", str(artifact), *ARGS, "--out", str(existing)])
    assert r.exit_code == 2 and "--resume" in r.stderr and existing.read_bytes() == results
    r = runner.invoke(cli, ["simulate", str(artifact), *ARGS, "--resume"])
    assert r.exit_code == 2 and "--out" in r.stderr
    with open(existing, "rb") as held:   # another run appending to it: refused, not interleaved
        fcntl.flock(held, fcntl.LOCK_EX)
        r = runner.invoke(cli, ["simulate", str(artifact), *ARGS, "--out", str(existing), "--resume"])
    assert r.exit_code == 2 and "in use" in r.stderr and existing.read_bytes() == results
    before = artifact.read_bytes()
    r = runner.invoke(cli, ["simulate", str(artifact), *ARGS, "--out", str(artifact)])
    assert r.exit_code == 2 and "is the input" in r.stderr and artifact.read_bytes() == before


def launch(*args, nproc=None):
    """``sresformer ARGS`` in a subprocess: plain, or under ``torch.distributed.run`` with ``nproc`` ranks."""
    run = [] if nproc is None else ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    return subprocess.run([sys.executable, *run, "-m", "cli.main", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=240)


# eval's wall-clock fields and the logits path (each run writes its own file) differ between any two runs
WALL = ("seconds", "images_per_s", "logits")


@pytest.mark.slow
def test_eval_and_energy_two_processes_equal_one(artifact, tmp_path):
    """2-rank ``eval`` (logits and counts), ``energy`` of an artifact (simulator counts) and of a model (its
    own counts) equal the 1-process run's output exactly; the 1-process eval is also recounted from its
    logits, and equals a run in one batch of 20 (no merge at all)."""
    nir = artifact.parent / "toy.nir"
    args = ["--limit", "20", "--batch-size", "3", "--json"]   # 7 batches: rank 0 gets 3, rank 1 gets 4
    runs = {"eval": ["eval", nir, *args], "energy-artifact": ["energy", artifact, *args],
            "energy-model": ["energy", nir, *args]}
    for name, cmd in runs.items():
        def logits(k, name=name):
            return ["--save-logits", str(tmp_path / f"{k}.npy")] if name == "eval" else []
        one = CliRunner().invoke(cli, [*map(str, cmd), *logits(1)])
        assert one.exit_code == 0, (name, one.stderr)
        two = launch(*cmd, *logits(2), nproc=2)
        assert two.returncode == 0, (name, two.stderr[-2000:])
        assert len(two.stdout.strip().splitlines()) == 1, name   # only rank 0 prints
        a, b = json.loads(one.stdout), json.loads(two.stdout)
        assert {k: v for k, v in a.items() if k not in WALL} == {k: v for k, v in b.items() if k not in WALL}, name
    import numpy as np

    from sresformer.data import open_dataset

    assert (tmp_path / "1.npy").read_bytes() == (tmp_path / "2.npy").read_bytes()   # rank 0 wrote batch order
    logits = np.load(tmp_path / "1.npy")
    labels = np.array([open_dataset("digits", img_size=8, num_classes=10, in_channels=1, T=None,
                                    augment=False).test[i][1] for i in range(20)])
    ev = json.loads(CliRunner().invoke(cli, ["eval", str(nir), *args]).stdout)
    assert ev["correct"] == int((logits.argmax(1) == labels).sum())
    whole = json.loads(CliRunner().invoke(cli, ["eval", str(nir), *args, "--batch-size", "20"]).stdout)
    assert whole["correct"] == ev["correct"] and whole["samples"] == 20


@pytest.mark.slow
def test_bad_input_under_torchrun_is_one_line_and_exit_2_on_every_rank(tmp_path):
    r = launch("simulate", tmp_path / "missing.loihi", "--json", nproc=2)
    assert r.returncode != 0 and r.stdout == ""
    ours = [line for line in r.stderr.splitlines() if line.startswith("sresformer:")]
    assert ours == [f"sresformer: error: artifact {tmp_path / 'missing.loihi'} does not exist"]
    # torchrun's own failure report (its ChildFailedError) lists each rank's exit status: 2 for both
    assert r.stderr.count("exitcode  : 2 ") == 2, r.stderr[-3000:]
    assert our_frames(r.stderr) == [] and "[rank" not in r.stderr   # no traceback from our code, no rank's own output


def ours(stderr: str) -> list[str]:
    """The lines our processes printed (torchrun's agent prints its own report besides)."""
    return [line for line in stderr.splitlines() if line.startswith("sresformer:")]


def our_frames(stderr: str) -> list[str]:
    """The traceback lines that point into this repository's code (torchrun's own traceback is in the venv)."""
    return [line for line in stderr.splitlines() if line.strip().startswith("File ") and REPO in line
            and ".venv" not in line]


PEER_LOST = "sresformer: error: another rank of the job ended (or stopped answering) before this one: "


@pytest.mark.slow
def test_a_rank_killed_mid_run_ends_the_job_in_one_line_and_the_run_resumes(artifact, single, tmp_path):
    """Rank 1 dies (as SIGKILL) after the first round: rank 0, in the next round's gather, finds the connection
    closed and says so in one line, exit 2 (torchrun could also stop it first: its terminated line, 143); the
    file keeps whole batches only, and a resumed run completes it to the uninterrupted bytes."""
    summary, results = single
    out = tmp_path / "r.jsonl"
    r = sim(artifact, "--out", out, nproc=2, env={"SRESFORMER_FAULT_EXIT_AFTER_BATCHES": "1",
                                                   "SRESFORMER_FAULT_RANK": "1"})
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.count("exitcode  : 137 ") == 1, r.stderr[-3000:]   # rank 1, killed without a word
    lines = ours(r.stderr)
    assert len(lines) <= 1, lines                     # rank 0's line at most: rank 1 had no time for one
    if lines and lines[0].startswith(PEER_LOST):      # what it does here: the gather fails at once
        assert "torch.distributed: " in lines[0] and r.stderr.count("exitcode  : 2 ") == 1
    elif lines:
        assert lines == ["sresformer: terminated; no partial output was left"]
    assert our_frames(r.stderr) == [] and "[rank" not in r.stderr
    data = out.read_bytes()
    assert results.startswith(data) and data.endswith(b"\n")   # a prefix of the whole run's bytes ...
    recs = records(data)
    assert recs == [] or "sums" in recs[-1]           # ... ending on a batch's last line: whole batches only
    r = sim(artifact, "--out", out, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout) == summary and out.read_bytes() == results


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_machines(artifact, tmp_path, missing_on: int) -> dict[int, tuple[int, str]]:
    """``simulate`` by two torchrun agents, as on two machines: each in its own working directory, where rank
    ``missing_on``'s lacks the artifact. ``{rank: (agent's exit status, its stderr)}``. The rendezvous numbers
    the nodes in the order of their addresses: ``--local-addr 127.0.0.(rank + 1)`` fixes which one is rank 0."""
    port, rdzv = _free_port(), f"sresformer-test-{uuid.uuid4().hex}"
    env = {**ENV, "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)}
    agents = {}
    try:
        for rank in (0, 1):
            d = tmp_path / f"machine{rank}"
            d.mkdir()
            if rank != missing_on:
                shutil.copy(artifact, d / "toy.loihi")
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                   "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", rdzv,
                   "--local-addr", f"127.0.0.{rank + 1}", "-m", "cli.main", "simulate", "toy.loihi", *ARGS]
            with open(d / "stdout", "w") as so, open(d / "stderr", "w") as se:
                agents[rank] = subprocess.Popen(cmd, cwd=d, env=env, stdout=so, stderr=se)
        status = {rank: a.wait(timeout=120) for rank, a in agents.items()}   # torch's own timeout: 30 minutes
    finally:
        for a in agents.values():
            if a.poll() is None:
                a.kill()
                a.wait()
    for rank in (0, 1):
        assert (tmp_path / f"machine{rank}" / "stdout").read_text() == "", rank   # no summary from a failed job
    return {rank: (status[rank], (tmp_path / f"machine{rank}" / "stderr").read_text()) for rank in (0, 1)}


@pytest.mark.slow
@pytest.mark.parametrize("missing_on", [1, 0])
def test_an_input_missing_on_one_machine_is_one_line_per_machine(artifact, tmp_path, missing_on):
    """The rank without the artifact says so, naming its rank unless it is rank 0 (:func:`hw_sim.shard.
    should_report` waits for rank 0's line first); the other, left in a collective, says in one line that a
    peer ended and where to look; no traceback from our code, within seconds."""
    start = time.monotonic()
    got = two_machines(artifact, tmp_path, missing_on)
    assert time.monotonic() - start < 90   # a few seconds of should_report's wait, not torch's timeout
    def named(line, rank):   # rank 0's line as it is, another rank's with its rank after "error: "
        return line if rank == 0 else line.replace("error: ", f"error: rank {rank}: ", 1)

    other = 1 - missing_on
    assert ours(got[missing_on][1]) == [named("sresformer: error: artifact toy.loihi does not exist", missing_on)]
    lines = ours(got[other][1])
    assert len(lines) == 1 and lines[0].startswith(named(PEER_LOST, other)), got[other][1][-3000:]
    for rank, (status, err) in got.items():
        assert status != 0, rank                              # torchrun's own ChildFailedError: 1
        assert err.count("exitcode  : 2 ") == 1, (rank, err[-3000:])   # its rank: 2, a bad input
        assert our_frames(err) == [] and "[rank" not in err, (rank, err[-3000:])


def test_one_error_line_per_job(monkeypatch):
    """:func:`hw_sim.shard.should_report` against a real torch.distributed TCP store (the one torchrun runs):
    rank 0 always reports; rank 1 stays silent on rank 0's message, and reports a different one or one rank 0
    never gave."""
    from datetime import timedelta

    import torch.distributed as dist

    from hw_sim import shard

    server = dist.TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=5), wait_for_workers=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(server.port))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(shard, "PEER_WAIT_S", 0.5)
    monkeypatch.setenv("RANK", "1")
    assert shard.should_report("no such file")          # rank 0 never failed (within the wait): say it
    monkeypatch.setenv("RANK", "0")
    assert shard.should_report("no such file")          # rank 0 reports and records its line
    assert dist.PrefixStore("sresformer", server).get("rank0-error") == b"no such file"
    monkeypatch.setenv("RANK", "1")
    assert not shard.should_report("no such file")      # the same line: once for the job
    assert shard.should_report("another file missing")  # its own error: said, by rank
