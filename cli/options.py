"""Option types and options shared by several commands: every number has a range and a unit.

The bounds are what the toolchain supports, so a value outside them is refused by click in
one line before any work starts, instead of running away (a huge T or worker count) or
writing a file that later commands cannot read (T = -1).
"""

from __future__ import annotations

import math

import click

from sresformer.limits import MAX_IMG_SIZE, MAX_T

# Samples per forward pass; beyond this a batch of Ti activations no longer fits in memory.
MAX_BATCH = 4096
# DataLoader worker processes: each is a full Python with torch (hundreds of MB).
MAX_WORKERS = 64
# Input side in pixels: the zoo's smallest stem needs 8 (the upper bound: sresformer.limits).
MIN_IMG = 8


class Finite(click.FloatRange):
    """A float range that also refuses NaN and infinities (which every comparison lets through)."""

    name = "finite float"

    def convert(self, value, param, ctx):
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return v


POSITIVE = click.IntRange(min=1)
STEPS = click.IntRange(1, MAX_T)
BATCH = click.IntRange(1, MAX_BATCH)
IMG = click.IntRange(MIN_IMG, MAX_IMG_SIZE)
SEED = click.IntRange(0, 2 ** 32 - 1)   # numpy's seed range, the narrowest of the generators seeded


def t_option(help_text: str):
    """``--T``: time steps, 1 to MAX_T (click shows the range in --help)."""
    return click.option("--T", "T", type=STEPS, default=None, help=f"{help_text}.")


def limit_option(help_text: str, default: int | None = None):
    """``--limit``: a positive number of test samples."""
    return click.option("--limit", type=POSITIVE, default=default, show_default=default is not None,
                        help=f"{help_text}.")


def batch_option(default: int | None, help_text: str = "Samples per forward pass"):
    """``--batch-size``: 1 to MAX_BATCH samples."""
    return click.option("--batch-size", type=BATCH, default=default, show_default=default is not None,
                        help=f"{help_text}.")


def spike_mask_option(help_text: str):
    """``--spike-mask RATIO[:MODULES]`` (parsed and range-checked by sresformer.masking)."""
    return click.option("--spike-mask", default=None, metavar="RATIO[:MODULES]", help=help_text)
