"""Progress display: a tqdm bar on an interactive stderr, one plain line per epoch always.

The bar is off when stderr is not a terminal (logs, CI, pipes), when the environment
sets ``SRESFORMER_NO_PROGRESS=1``, and on every distributed rank but 0.
"""

from __future__ import annotations

import os
import sys


def progress_enabled(is_main: bool = True) -> bool:
    """Whether to draw a bar: rank 0, stderr a TTY, and ``SRESFORMER_NO_PROGRESS`` not set to 1."""
    if not is_main or os.environ.get("SRESFORMER_NO_PROGRESS", "") not in ("", "0"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress_bar(total: int, desc: str):
    """A tqdm bar over ``total`` batches on stderr that disappears when done."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True, unit="batch")


def log_line(text: str) -> None:
    """One line on stderr, flushed (the per-epoch summary; also shown without a TTY)."""
    print(text, file=sys.stderr, flush=True)
