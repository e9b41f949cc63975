"""The files of a run directory and the order they are written in, so a kill never corrupts it.

``RUN_DIR/last.ckpt``    after every epoch: model, meta and ``train_state`` (optimizer,
                         scheduler, epoch, best accuracy, RNG states, the metrics history)
``RUN_DIR/best.ckpt``    when the test accuracy improves (strictly): model and meta
``RUN_DIR/metrics.jsonl``one JSON object per completed epoch
``RUN_DIR/.lock``        empty; ``flock``-ed by the live run, so a second run into the
                         same directory is refused (``sresformer.fileio.directory_lock``)

Every file is written to a temporary file, fsynced and renamed (``sresformer.fileio``).
At the end of an epoch the order is best, then last, then metrics: ``last.ckpt`` is the
commit point. A kill before it leaves the previous epoch's state (the epoch is redone,
identically, and rewrites ``best.ckpt`` if it wrote it); a kill after it loses at most the
metrics line, which :meth:`RunDir.write_metrics` restores on resume from the history kept
inside ``last.ckpt``. So ``metrics.jsonl`` always ends at the last complete epoch.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ..checkpoint import read_checkpoint, save_checkpoint
from ..errors import CheckpointError, UserError
from ..fileio import atomic_path

LAST, BEST, METRICS = "last.ckpt", "best.ckpt", "metrics.jsonl"


class RunDir:
    """Paths and atomic writers of one run directory (only rank 0 writes)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.last = self.path / LAST
        self.best = self.path / BEST
        self.metrics = self.path / METRICS

    def check_writable(self) -> None:
        """Raise ``UserError`` if the directory cannot be created or written."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} is a file; give a directory for the run")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create run directory {self.path}: {e.strerror or e}") from None
        if not os.access(self.path, os.W_OK):
            raise UserError(f"run directory {self.path} is not writable")

    def has_run(self) -> bool:
        """Whether a previous run left a ``last.ckpt`` here."""
        return self.last.exists()

    def read_last(self) -> dict:
        """The ``last.ckpt`` dict to resume from; ``CheckpointError`` if it is unusable."""
        ckpt = read_checkpoint(self.last)
        state = ckpt.get("train_state")
        needed = ("epoch", "optimizer", "scheduler", "rng", "metrics", "config")
        if not isinstance(state, dict) or any(k not in state for k in needed):
            raise CheckpointError(f"{self.last} holds no complete training state; it cannot be resumed "
                                  f"(start a new run with another --out)")
        return ckpt

    def remove_stale_temporaries(self) -> None:
        """Delete temporaries a killed writer left behind (``.last.ckpt.XXXX.tmp`` ...)."""
        for name in (LAST, BEST, METRICS):
            for tmp in self.path.glob(f".{name}.*.tmp"):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def write_metrics(self, history: list[dict]) -> None:
        """Rewrite ``metrics.jsonl`` atomically: one JSON object per line, one line per epoch."""
        with atomic_path(self.metrics) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                for record in history:
                    f.write(json.dumps(record, sort_keys=False) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def write_epoch(self, model, meta: dict, train_state: dict, history: list[dict], improved: bool) -> None:
        """End-of-epoch writes in the safe order: best (if improved), last, metrics."""
        if improved:
            save_checkpoint(model, self.best, **meta)
        save_checkpoint(model, self.last, train_state=train_state, **meta)
        self.write_metrics(history)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a ``metrics.jsonl`` file, in order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
