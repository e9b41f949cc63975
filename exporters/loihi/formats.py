"""Bring a lowered graph's synapses within the chip's bias and weight-exponent formats.

The unit convention (``hw_sim/ARTIFACT.md``, *Chip formats*): our state unit is the chip's
membrane / current unit, and a synapse's ``shift`` ``k`` is the chip's ``weight_exp`` plus its
``input_align_bits`` (the chip shifts the accumulator by ``weight_exp``, then left-aligns the
synaptic input by 6 bits), so ``k`` must lie in ``weight_exp_min + align .. weight_exp_max + align``.
The chip stores one bias per compartment, ``m * 2**e`` (``m`` a signed ``bias_mant_bits``-bit
mantissa, ``0 <= e <= bias_exp_max``), added to the state every step: the format applies to the
summed bias of the synapses co-located in one compartment group, not to each synapse's.

What :func:`fit_formats` does, per on-chip synapse reading binary spikes (static synapses run on
the embedded processor and are exempt; a synapse reading a graded value is noted, not changed,
see below):

- a shift above the range moves into the mantissas (``w * 2**d``), exact, when they stay within
  ``weight_bits``; otherwise nothing representable remains and the layer is refused;
- a shift below the range moves into the mantissas (``w / 2**d``), exact when every mantissa is
  a multiple of ``2**d``; otherwise the layer is requantized (mantissas rounded half to even,
  losing ``d`` bits: a rescale note), and refused when every mantissa rounds to zero;
- the summed bias of each compartment rounds to the nearest representable value (round half up
  at the smallest exponent whose mantissa fits); it is stored on the group's first synapse and
  the others' biases become 0 (the sum, which is all the chip keeps, is unchanged). A summed bias
  beyond ``(2**(bias_mant_bits-1) - 1) * 2**bias_exp_max`` saturates there (the nearest chip value)
  and is noted (``bias_saturated``): Spikformer's patch-embedding convs reach 851,858 at the
  lowering's units; a coarser unit for such a compartment would keep them, and is not done here.

Graded-input synapses (Loihi 2 graded payloads, e.g. the readout reading the residual stream):
the facts above are those of a binary-spike synapse into a LIF compartment; a graded sender on
Loihi 2 can scale its payload (Lava's ``GradedVec`` has an ``exp``), which our format does not
express. Their shifts outside the range are left as they are and reported (``unenforced``: the
payload shift the sender would need); the demo's classifier needs shift -11 against the -2
minimum, i.e. 9 bits, and every mantissa would round to 0 at -2, so enforcing it would refuse
the model.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hw_sim.arith import shift_round
from hw_sim.chips import Chip
from hw_sim.mapping import plan_groups
from hw_sim.processes import ProcessGraph
from sresformer.errors import UserError


class FormatError(UserError):
    """A layer that has no representation in the chip's bias or weight-exponent format."""


def shift_range(chip: Chip) -> tuple[int, int]:
    """The ``shift`` values (powers of two on the accumulator, in our state unit) the chip can apply."""
    return chip.weight_exp_min + chip.input_align_bits, chip.weight_exp_max + chip.input_align_bits


def representable_bias(b, mant_bits: int, exp_max: int) -> np.ndarray:
    """The chip's bias nearest to each integer of ``b``: ``m * 2**e`` with ``-2**(mant_bits-1) <= m <=
    2**(mant_bits-1) - 1`` and ``0 <= e <= exp_max``, at the smallest ``e`` whose mantissa (``b / 2**e``
    rounded half up) fits; a value with no such ``e`` saturates to the format's end
    (``(2**(mant_bits-1) - 1) << exp_max`` or ``-2**(mant_bits-1) << exp_max``)."""
    b = np.asarray(b, dtype=np.int64)
    lo, hi = -(1 << (mant_bits - 1)), (1 << (mant_bits - 1)) - 1
    out = np.empty_like(b)
    todo = np.ones(b.shape, dtype=bool)
    for e in range(exp_max + 1):
        m = shift_round(b, -e)
        fits = todo & (m >= lo) & (m <= hi)
        out[fits] = m[fits] << e
        todo &= ~fits
    out[todo] = np.where(b[todo] > 0, hi << exp_max, lo << exp_max)
    return out


def fit_shift(w: np.ndarray, shift: int, weight_bits: int, lo: int, hi: int) -> tuple[np.ndarray, int, int]:
    """``(mantissas, shift, bits_lost)`` with ``shift`` moved into ``lo..hi``: exact (``bits_lost`` 0)
    when the mantissas absorb the difference; requantized below the range (``bits_lost`` bits
    dropped, round half to even). Raises ``ValueError`` when nothing representable remains."""
    w = np.asarray(w, dtype=np.int64)
    q = (1 << (weight_bits - 1)) - 1
    if shift > hi:
        d = shift - hi
        if np.abs(w).max(initial=0) > q >> d:
            raise ValueError(f"shift {shift} is above the chip's {hi} and its mantissas (peak "
                             f"{int(np.abs(w).max())}) cannot take the other {d} bits within {weight_bits} bits")
        return w << d, hi, 0
    if shift < lo:
        d = lo - shift
        if not np.any(w % (1 << d)):
            return w >> d, lo, 0
        m = np.round(w / float(1 << d)).astype(np.int64)
        if not m.any():
            raise ValueError(f"shift {shift} is below the chip's {lo} and every mantissa rounds to 0 at {lo}")
        return m, lo, d
    return w, shift, 0


def fit_formats(pg: ProcessGraph, chip: Chip) -> list[dict]:
    """Bring ``pg``'s on-chip spike-input synapses and compartment biases within ``chip``'s formats, in
    place. Returns the per-layer notes: ``layer``, ``shift``, ``new_shift``, ``bits_lost`` of each
    requantized layer; ``layer``, ``shift``, ``unenforced`` of each graded-input synapse outside the
    range; ``layer``, ``bias_saturated``, ``to`` of each compartment whose bias saturated.
    ``FormatError`` (one line naming the layer) for a layer with no representation."""
    lo, hi = shift_range(chip)
    notes = []
    for p in pg:
        if p.kind != "synapse" or p.static:
            continue
        if p.attrs.graded_input:
            if not lo <= p.attrs.shift <= hi:
                notes.append({"layer": p.name, "shift": int(p.attrs.shift), "unenforced":
                              f"graded input: the sender would scale its payload by 2**{p.attrs.shift - lo:+d}"
                              if p.attrs.shift < lo else f"graded input: shift above {hi}"})
            continue
        try:
            w, k, lost = fit_shift(p.params["weight"], p.attrs.shift, p.attrs.weight_bits, lo, hi)
        except ValueError as e:
            raise FormatError(f"layer {p.name!r}: {e}; {chip.name} cannot represent it") from None
        if k != p.attrs.shift:
            p.params["weight"] = w
            if lost:
                notes.append({"layer": p.name, "shift": int(p.attrs.shift), "new_shift": k, "bits_lost": lost})
            p.attrs = dataclasses.replace(p.attrs, shift=k)
    for syns in compartment_synapses(pg):
        total = sum(np.asarray(s.params["bias"], dtype=np.int64) for s in syns)
        fitted = representable_bias(total, chip.bias_mant_bits, chip.bias_exp_max)
        over = np.abs(fitted - total) > (1 << chip.bias_exp_max) // 2   # beyond the format, not rounded
        if over.any():
            worst = int(np.argmax(np.abs(total[over])))
            notes.append({"layer": syns[0].name, "bias_saturated": int(total[over].flat[worst]),
                          "to": int(fitted[over].flat[worst])})
        for i, s in enumerate(syns):
            s.params["bias"] = fitted if i == 0 else np.zeros_like(fitted)
    return notes


def compartment_synapses(pg: ProcessGraph) -> list[list]:
    """The on-chip synapses whose biases one compartment sums: per compartment group, its co-located
    non-static synapses (element for element, so their ``[C_out]`` biases line up)."""
    groups, _, _ = plan_groups(pg)
    out, seen = [], set()
    for g in groups.values():
        syns = [pg.processes[m] for m in g.members if pg.processes[m].kind == "synapse" and not pg.processes[m].static]
        seen.update(s.name for s in syns)
        if syns:
            out.append(syns)
    # (a non-static synapse outside every group would be on the embedded processor: none is, but
    # it would still hold its own bias)
    out += [[p] for p in pg if p.kind == "synapse" and not p.static and p.name not in seen]
    return out
