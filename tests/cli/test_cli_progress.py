"""Progress bars (sresformer.progress): drawn on stderr when it is a terminal, never on stdout.

Each command runs twice in a subprocess with stdout a pipe: once with stderr on a pseudo-terminal
(os.openpty, as an interactive shell gives it) and once with stderr a pipe. The reference is the
second run: its stdout must be the same bytes (the bars change nothing a script reads), and its
stderr must be empty (no bar without a terminal)."""

import fcntl
import json
import os
import struct
import subprocess
import sys
import termios
import threading

import pytest

from testutil import write_toy_nir

ENV = {k: v for k, v in os.environ.items() if k not in ("SRESFORMER_NO_PROGRESS", "RANK", "WORLD_SIZE")}
ENV["OMP_NUM_THREADS"] = "1"
# keys that differ between two runs anyway: eval's wall-clock time, simulate's temporary artifact path
VOLATILE = ("seconds", "images_per_s", "artifact")


def run(*args, tty: bool):
    """``sresformer ARGS`` with stderr on a pty (``tty``) or a pipe: ``(returncode, stdout, stderr)``."""
    cmd = [sys.executable, "-m", "cli.main", *map(str, args)]
    if not tty:
        r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
        return r.returncode, r.stdout, r.stderr
    master, slave = os.openpty()
    # a terminal 100 columns wide (a new pty has 0: tqdm would fit its bar in nothing)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    got = []

    def drain():   # read the terminal side as it is written: a full pty buffer would block the child
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:   # EIO: every writer closed the terminal
                return
            if not chunk:
                return
            got.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=ENV,
                           timeout=120)
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return p.returncode, p.stdout.decode(), b"".join(got).decode(errors="replace")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_nir(tmp_path_factory.mktemp("progress") / "toy.nir")


@pytest.mark.slow
def test_bars_on_a_terminal_stderr_only(toy, tmp_path):
    # simulate of a NIR model runs every stage: calibration, lowering, mapping, writing, set-up, simulation
    from exporters.loihi.export import export_loihi

    art = tmp_path / "toy.loihi"
    export_loihi(str(toy), str(art), calib_data="digits", calib_images=8, eval_images=8)
    cases = [
        (["simulate", toy, "--limit", "6", "--batch-size", "2", "--json"],
         ["calibrate", "overflow check", "accuracy check", "lower", "map", "write artifact", "simulator set-up",
          "simulate"]),
        (["energy", art, "--limit", "6", "--batch-size", "2", "--json"], ["simulator set-up", "energy"]),
        (["eval", toy, "--limit", "6", "--batch-size", "2", "--json"], ["eval"]),
    ]
    for args, bars in cases:
        rc, out, err = run(*args, tty=True)
        assert rc == 0, (args, err[-2000:])
        json.loads(out)   # stdout: one JSON object and nothing else
        assert len(out.strip().splitlines()) == 1, args
        for desc in bars:
            assert f"{desc}:" in err, (args, desc, err[-2000:])   # tqdm's "desc:  50%|..." on the terminal
        rc2, out2, err2 = run(*args, tty=False)
        assert rc2 == 0 and err2 == "", (args, err2[-2000:])   # no terminal: not one byte of progress
        same = [{k: v for k, v in json.loads(o).items() if k not in VOLATILE} for o in (out, out2)]
        assert same[0] == same[1], args   # the bars change nothing a script reads


def test_switches(monkeypatch):
    from sresformer import progress

    class Tty:
        def isatty(self):
            return True

        def write(self, s):
            return len(s)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", Tty())
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv(progress.OFF_ENV, raising=False)
    assert progress.enabled()
    monkeypatch.setenv("RANK", "1")   # a torchrun rank other than 0 never draws
    assert not progress.enabled()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv(progress.OFF_ENV, "1")
    assert not progress.enabled()
    items = [1, 2, 3]
    assert progress.track(items, "x") is items   # off: the iterable itself, nothing wrapped
    assert list(progress.track(iter(items), "x", show=True)) == items
