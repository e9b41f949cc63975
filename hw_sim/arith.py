"""Integer arithmetic shared by every implementation of the chip's program format.

One place for the rounding rules, so the fake-quant torch model, the executor and the
attention-gate spec cannot drift apart (they all import these functions).
"""

from __future__ import annotations


def shift_round(acc, k: int):
    """``acc * 2**k`` for ``k >= 0``; for ``k < 0`` the division by ``2**-k`` rounded half up,
    ``floor((acc + 2**(-k-1)) / 2**-k)``. Works on Python ints, numpy arrays and torch tensors
    (any type with ``*``, ``+`` and floor division ``//``); integers in, integers out."""
    if k >= 0:
        return acc * (2 ** k)
    d = 2 ** (-k)
    return (acc + d // 2) // d
