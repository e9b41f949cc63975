"""Integer arithmetic shared by every implementation of the chip's program format.

One place for the rounding rules, so the fake-quant torch model, the executor and the
attention-gate spec cannot drift apart (they all import these functions), and one rule for
weight mantissas (the lowering and the attention-gate spec).
"""

from __future__ import annotations

import math

import numpy as np


def shift_round(acc, k: int):
    """``acc * 2**k`` for ``k >= 0``; for ``k < 0`` the division by ``2**-k`` rounded half up,
    ``floor((acc + 2**(-k-1)) / 2**-k)``. Works on Python ints, numpy arrays and torch tensors
    (any type with ``*``, ``+`` and floor division ``//``); integers in, integers out."""
    if k >= 0:
        return acc * (2 ** k)
    d = 2 ** (-k)
    return (acc + d // 2) // d


def quantize_mantissas(w, bits: int):
    """``(mant, shift)`` with ``w ~= mant * 2**shift``: signed ``bits``-bit integer mantissas
    (``|mant| <= 2**(bits-1) - 1``, round half to even) and the smallest power-of-two ``shift`` that
    fits the peak of ``w`` (a numpy array) into them; all-zero ``w`` gives zeros and shift 0."""
    w = np.asarray(w, dtype=np.float64)
    peak = float(np.abs(w).max()) if w.size else 0.0
    if peak == 0:
        return np.zeros(w.shape, np.int64), 0
    q = 2 ** (bits - 1) - 1
    shift = math.ceil(math.log2(peak / q))
    return np.clip(np.round(w / 2.0 ** shift), -q, q).astype(np.int64), shift
