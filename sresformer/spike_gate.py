"""The random spike gate of masked spiking transformers: one deterministic function, shared by every implementation.

Random spike masking (Wang et al., "Masked Spiking Transformer", ICCV 2023) drops each
spike entering chosen layers with probability ``ratio``. At evaluation and on the chip
the drop decision must be reproducible, so it is a counter-based pseudo-random gate: a
pure function of ``(seed, gate_id, t, element)``, the same for every sample, different
per time step and per element. On a chip it is a per-synapse-group generator reset at
the start of every inference (a counter-based hash needs no state at all: the compartment
index and the step counter are the counter).

The hash is Chris Wellons' ``lowbias32`` integer mixer (hash-prospector, 2018; bias
0.17), chained over the four keys::

    h = mix(element ^ mix(t ^ mix(gate_id ^ mix(seed))))      (all mod 2**32)
    keep  <=>  h >= threshold,   threshold = round(ratio * 2**32)

so exactly ``threshold / 2**32`` of the hash range is dropped. It is written once, here,
for python ints and int64 torch tensors alike (only ``^``, ``>>``, ``&`` and products
below ``2**48``, so int64 never overflows); the float model (``sresformer.masking``), the
NIR reader's float op, the fake-quant model and the chip simulator all call it, and the
tests hold it against an independent numpy ``uint64`` implementation.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
MIX_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)   # lowbias32 (Wellons, hash-prospector)


def _mul32(x, c: int):
    """``(x * c) mod 2**32`` for ``0 <= x < 2**32`` without int64 overflow: split ``c`` into 16-bit halves."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & MASK32


def mix32(x):
    """lowbias32: a bijective 32-bit integer mixer (python int or int64 tensor with values in ``[0, 2**32)``)."""
    x = x ^ (x >> 16)
    x = _mul32(x, MIX_MULTIPLIERS[0])
    x = x ^ (x >> 15)
    x = _mul32(x, MIX_MULTIPLIERS[1])
    return x ^ (x >> 16)


def drop_threshold(ratio: float) -> int:
    """The hash threshold: an element is dropped when its hash is below ``round(ratio * 2**32)``."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"spike mask ratio must be in [0, 1], got {ratio}")
    return int(round(ratio * 2 ** 32))


def gate_hash(seed: int, gate_id: int, t: int, element: torch.Tensor) -> torch.Tensor:
    """32-bit hashes (int64 tensor) of flat element indices ``element`` at step ``t`` of gate ``gate_id``."""
    prefix = mix32(int(t) & MASK32 ^ mix32(int(gate_id) & MASK32 ^ mix32(int(seed) & MASK32)))
    return mix32(element.to(torch.int64) ^ prefix)


def keep_mask(ratio: float, seed: int, gate_id: int, T: int, shape) -> torch.Tensor:
    """Boolean ``[T, *shape]``: True where the spike of that element (flat C-order index) at step ``t`` passes."""
    n = 1
    for s in shape:
        n *= int(s)
    threshold = drop_threshold(ratio)
    idx = torch.arange(n, dtype=torch.int64)
    return torch.stack([gate_hash(seed, gate_id, t, idx) >= threshold for t in range(T)]).reshape(T, *shape)


def apply_gate(x: torch.Tensor, ratio: float, seed: int, gate_id: int, t0: int = 0) -> torch.Tensor:
    """``x`` (``[T, B, *shape]``, steps ``t0 .. t0+T-1``) with the dropped elements zeroed; same dtype."""
    if ratio == 0:
        return x
    keep = keep_mask(ratio, seed, gate_id, x.shape[0] + t0, x.shape[2:])[t0:].unsqueeze(1)
    return x * keep.to(x.dtype)


__all__ = ["MASK32", "apply_gate", "drop_threshold", "gate_hash", "keep_mask", "mix32"]
