"""Progress bars (the project's tqdm) on stderr, for every step that can take more than a few seconds.

A bar is drawn only when all of these hold:

* stderr is a terminal (a log file, a pipe or CI gets nothing: no carriage-return litter);
* ``SRESFORMER_NO_PROGRESS`` is unset or ``0`` (scripts and tests switch bars off with ``1``);
* this process is rank 0 of a torchrun job (``RANK``; N ranks would draw N interleaved bars).

Bars go to stderr and nothing here ever writes to stdout, so ``--json`` keeps stdout one JSON
object. A bar is transient (``leave=False``): it is erased when its step ends, and the
command's own output follows on a clean terminal.
"""

from __future__ import annotations

import os
import sys
import threading

from tqdm import tqdm

OFF_ENV = "SRESFORMER_NO_PROGRESS"

# tqdm's default lock is a multiprocessing RLock, whose creation fixes this process's multiprocessing
# start method; Lava sets its own ('fork') when imported and fails if one is already fixed. Our bars are
# drawn by one process (rank 0), so a thread lock is all they need.
tqdm.set_lock(threading.RLock())


def enabled() -> bool:
    """Whether this process draws bars: stderr a TTY, ``SRESFORMER_NO_PROGRESS`` not set, rank 0."""
    if os.environ.get(OFF_ENV, "") not in ("", "0"):
        return False
    if (os.environ.get("RANK", "0") or "0") != "0":
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def bar(total: int | None, desc: str, unit: str = "it", initial: int = 0, show: bool | None = None) -> tqdm:
    """A bar of ``total`` ``unit``\\ s for manual ``update(n)`` calls; a silent no-op bar when off.

    ``show`` forces it on or off (default: :func:`enabled`)."""
    on = enabled() if show is None else show
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr, leave=False,
                dynamic_ncols=True, disable=not on)


def track(iterable, desc: str, unit: str = "it", total: int | None = None, show: bool | None = None):
    """``iterable`` itself, counted on a bar when bars are on (:func:`enabled`, or ``show``).

    ``total`` defaults to ``len(iterable)`` where it has one (a generator's bar counts without a total)."""
    on = enabled() if show is None else show
    if not on:
        return iterable
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    return tqdm(iterable, desc=desc, unit=unit, total=total, file=sys.stderr, leave=False, dynamic_ncols=True)
