"""Units of the lowering's integer values: classes of values that share a unit, scales, exponents.

Values that are summed share one unit (:class:`Classes`, a union-find over value names); a value's
real number is ``integer * 2**e * scale``, ``scale`` a positive per-value factor (a scalar where all its
entries are equal: :func:`compact`); :func:`exponent_for` picks the finest ``e`` that keeps a peak
within a limit. Used by :mod:`exporters.loihi.lower`.
"""

from __future__ import annotations

import math

import numpy as np

from exporters.nir.convention import NIRError


class Classes:
    """Union-find over value names: values in one class share their unit exponent."""

    def __init__(self, names):
        self.parent = {n: n for n in names}

    def find(self, n):
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def union(self, a, b):
        self.parent[self.find(a)] = self.find(b)


def pair(v) -> tuple[int, int]:
    """A scalar or pair (NIR's stride, padding, kernel) as an int pair."""
    return tuple(int(x) for x in np.broadcast_to(np.asarray(v), (2,)))


def f64(v) -> np.ndarray:
    """``v`` as a float64 array."""
    return np.asarray(v, dtype=np.float64)


def compact(scale):
    """A scale array whose entries are all equal becomes a scalar."""
    arr = np.asarray(scale, dtype=np.float64)
    return np.float64(arr.flat[0]) if arr.size and np.all(arr == arr.flat[0]) else arr


def pooled(scale, fn):
    """The scale of a pooled value: per channel, which must be uniform over each window's map."""
    if not np.ndim(scale):
        return scale
    per_c = np.asarray(scale).reshape(scale.shape[0], -1)
    if not np.all(per_c == per_c[:, :1]):
        raise NIRError(f"node {fn.name!r}: pooling a value whose folded scale varies across space")
    return np.broadcast_to(per_c[:, :1].reshape(-1, 1, 1), fn.out_shape)


def exponent_for(peak: float, limit: float) -> int:
    """The smallest ``e`` with ``peak / 2**e <= limit`` (0 for a value that never moves)."""
    if peak <= 0:
        return 0
    return math.ceil(math.log2(peak / limit))
