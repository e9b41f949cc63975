"""``simulate --out RESULTS.jsonl``: per-sample results appended as the run goes, and read back to resume.

The file is JSON lines. The first is the header: ``{"format": "sresformer-simulate-results",
"version": 1, "run": {...}}``, ``run`` naming what was simulated (the artifact's SHA-256, the data,
the sample count, batch size, profile and timing model); a resumed run must match it. Then one line
per sample: ``index``, ``batch`` (its batch's index), ``label``, ``prediction`` (argmax class) and
``agreed`` (bit-equal to the reference, or null without one). A batch's last line also carries
``sums``: the batch's partial (:mod:`hw_sim.partials`), everything needed to re-merge its counts
exactly (the counts are per batch, not per sample, because a float sum over a batch is only
reproduced bit for bit by the same batch).

Atomicity: a batch's lines are appended with one ``write`` of complete lines, then ``fsync``: after a
kill the file ends with whole batches, at most followed by one torn tail (a write cut short, with no
final newline), which a resume drops. Under torchrun only rank 0 writes (one file, in batch order,
resumable with any number of processes); the other ranks send it their partials after each round.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

from sresformer.errors import UserError
from sresformer.fileio import atomic_path

from .partials import PARTIAL_KEYS

FORMAT, VERSION = "sresformer-simulate-results", 1
SAMPLE_KEYS = {"index", "batch", "label", "prediction", "agreed"}


class ResultsError(UserError):
    """A results file that is malformed, foreign, or from a different run."""


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (names the artifact a results file belongs to)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _bad(path, lineno: int, why: str) -> ResultsError:
    return ResultsError(f"{path} line {lineno} is not a simulate results record ({why}): pass a results file "
                        "written by 'sresformer simulate --out', or a new --out path")


def _check_sample(path, lineno: int, rec, run: dict, ranges) -> None:
    if not isinstance(rec, dict) or not SAMPLE_KEYS <= set(rec):
        raise _bad(path, lineno, f"needs the keys {', '.join(sorted(SAMPLE_KEYS))}")
    i, b = rec["index"], rec["batch"]
    if not (isinstance(i, int) and isinstance(b, int) and 0 <= b < len(ranges) and ranges[b][0] <= i < ranges[b][1]):
        raise _bad(path, lineno, f"sample {i!r} is not in batch {b!r} of {run['samples']} samples")
    if "sums" in rec:
        sums = rec["sums"]
        if not isinstance(sums, dict) or set(sums) != set(PARTIAL_KEYS):
            raise _bad(path, lineno, "its sums are not a batch's partial")
        if sums["n"] != ranges[b][1] - ranges[b][0]:
            raise _bad(path, lineno, f"its sums count {sums['n']!r} samples, batch {b} has "
                                     f"{ranges[b][1] - ranges[b][0]}")


def read_results(path: str | os.PathLike, run: dict, ranges: list[tuple[int, int]]) -> tuple[dict[int, dict], int]:
    """The complete batches of a results file, ``{batch: {"samples": [...], "sums": partial}}``, and the
    byte length of the file up to the end of the last complete batch (a torn tail after it is dropped).

    Raises :class:`ResultsError` for a file that is not ours, is from a different ``run``, or has a
    malformed, duplicated or out-of-place line."""
    path = Path(path)
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop()   # b"" when the file ends with a newline; else a write cut short
    try:
        head = json.loads(lines[0]) if lines else None
    except ValueError:
        head = None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise ResultsError(f"{path} is not a simulate results file (no '{FORMAT}' header): pass one written by "
                           "'sresformer simulate --out', or a new --out path")
    if head.get("version") != VERSION:
        raise ResultsError(f"{path} is version {head.get('version')!r} of the results format, this sresformer "
                           f"reads version {VERSION}")
    if head.get("run") != run:
        diff = sorted(k for k in set(run) | set(head.get("run") or {}) if (head.get("run") or {}).get(k) != run.get(k))
        raise ResultsError(f"{path} is the results of a different run ({', '.join(diff)} differ): resume with the "
                           "same artifact and options, or pass a new --out path")
    done: dict[int, dict] = {}
    pending: list[dict] = []
    end = offset = len(lines[0]) + 1
    for lineno, raw in enumerate(lines[1:], start=2):
        offset += len(raw) + 1
        try:
            rec = json.loads(raw)
        except ValueError:
            raise _bad(path, lineno, "not JSON") from None
        _check_sample(path, lineno, rec, run, ranges)
        b = rec["batch"]
        start, stop = ranges[b]
        if b in done or rec["index"] != start + len(pending) or (pending and pending[0]["batch"] != b):
            raise _bad(path, lineno, f"sample {rec['index']} of batch {b} is out of order or repeated")
        pending.append(rec)
        if "sums" in rec:
            if len(pending) != stop - start:
                raise _bad(path, lineno, f"batch {b} ends before its last sample")
            done[b] = {"samples": [{k: r[k] for k in sorted(SAMPLE_KEYS)} for r in pending], "sums": rec["sums"]}
            pending, end = [], offset
    if pending and not torn:
        raise _bad(path, len(lines), f"batch {pending[0]['batch']} has no sums line (the file was cut or edited)")
    return done, end


class ResultsFile:
    """The results file of one run, open for appending whole batches (rank 0 only)."""

    def __init__(self, path: str | os.PathLike, run: dict, ranges: list[tuple[int, int]], resume: bool):
        """Read ``path`` if ``resume`` and it exists (its batches are in :attr:`done`), else create it with
        its header; an existing file without ``resume`` is refused (it would mix two runs)."""
        self.path = Path(path)
        self.done: dict[int, dict] = {}
        existed = self.path.exists()
        if existed and not resume:
            raise ResultsError(f"{self.path} exists: pass --resume to continue that run, or a new --out path")
        if not existed:
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps({"format": FORMAT, "version": VERSION, "run": run}) + "\n")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            # two runs appending to one file would interleave their batches; the kernel drops the lock
            # when the holder dies, so a killed run never blocks its resume
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise ResultsError(f"{self.path} is in use by another sresformer process; wait for it to end or "
                               "pass a new --out path") from None
        if existed:
            try:
                self.done, end = read_results(self.path, run, ranges)
            except BaseException:
                self.close()
                raise
            if end != self.path.stat().st_size:
                os.truncate(self.path, end)   # drop the torn tail: the next batch starts on a new line

    def close(self) -> None:
        """Release the file (and its lock)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def append(self, batch: int, samples: list[dict], sums: dict) -> None:
        """Append one batch's sample lines (its sums on the last) with one write, then fsync."""
        recs = [dict(s, batch=batch) for s in samples]
        recs[-1]["sums"] = sums
        view = memoryview("".join(json.dumps(r) + "\n" for r in recs).encode())
        while view:   # a regular file takes it in one write; a short write (disk full) goes on
            view = view[os.write(self.fd, view):]
        os.fsync(self.fd)
