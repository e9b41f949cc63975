"""Progress display for training: a tqdm bar on an interactive stderr, one plain line per epoch always.

The bar follows :mod:`sresformer.progress` (off when stderr is not a terminal, when
``SRESFORMER_NO_PROGRESS=1``, and on every distributed rank but 0).
"""

from __future__ import annotations

import sys

from sresformer import progress


def progress_enabled(is_main: bool = True) -> bool:
    """Whether to draw a bar: rank 0 (``is_main``) and :func:`sresformer.progress.enabled`."""
    return is_main and progress.enabled()


def progress_bar(total: int, desc: str):
    """A tqdm bar over ``total`` batches on stderr that disappears when done."""
    return progress.bar(total, desc, unit="batch", show=True)


def log_line(text: str) -> None:
    """One line on stderr, flushed (the per-epoch summary; also shown without a TTY)."""
    print(text, file=sys.stderr, flush=True)
