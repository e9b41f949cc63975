"""Checks of an artifact's synapses against its chip's bias and weight-exponent formats.

The rule (``ARTIFACT.md``, *Chip formats*): an on-chip synapse reading binary spikes has a
``shift`` within ``weight_exp_min + input_align_bits .. weight_exp_max + input_align_bits``;
every compartment group's summed bias (its co-located non-static synapses' biases, the one
bias the chip stores per compartment) is ``m * 2**e`` with a signed ``bias_mant_bits``-bit
``m`` and ``0 <= e <= bias_exp_max``. Static synapses run on the embedded processor and
graded-input synapses are not held to the shift range (``exporters/loihi/formats.py`` says
why). Problems are ``artifact_check.Invalid``, one line naming the layer.
"""

from __future__ import annotations

import numpy as np

from .artifact_check import Invalid, where_of
from .mapping import plan_groups
from .processes import ProcessGraph


def _on_chip_synapses(pg: ProcessGraph, names) -> list:
    return [pg.processes[n] for n in names if pg.processes[n].kind == "synapse" and not pg.processes[n].static]


def _first_unrepresentable(v: np.ndarray, mant_bits: int, exp_max: int):
    """The first value of ``v`` that no ``m * 2**e`` equals (None when all are representable)."""
    lo, hi = -(1 << (mant_bits - 1)), (1 << (mant_bits - 1)) - 1
    ok = np.zeros(v.shape, dtype=bool)
    for e in range(exp_max + 1):
        step = 1 << e
        ok |= (v % step == 0) & (v // step >= lo) & (v // step <= hi)
    return None if ok.all() else int(v[~ok].flat[0])


def check_formats(pg: ProcessGraph, chip: dict) -> None:
    """Refuse the first synapse whose shift, or compartment whose summed bias, the chip cannot hold."""
    align = chip["input_align_bits"]
    lo, hi = chip["weight_exp_min"] + align, chip["weight_exp_max"] + align
    for p in _on_chip_synapses(pg, pg.processes):
        if not p.attrs.graded_input and not lo <= p.attrs.shift <= hi:
            raise Invalid(f"{where_of(p)}: shift {p.attrs.shift} is outside {chip['name']}'s {lo}..{hi} (weight "
                          f"exponent {chip['weight_exp_min']}..{chip['weight_exp_max']} plus the {align}-bit "
                          "input alignment)")
    groups, _, _ = plan_groups(pg)
    for g in groups.values():
        syns = _on_chip_synapses(pg, g.members)
        if not syns:
            continue
        total = sum(np.asarray(s.params["bias"], dtype=np.int64) for s in syns)
        bad = _first_unrepresentable(total, chip["bias_mant_bits"], chip["bias_exp_max"])
        if bad is not None:
            raise Invalid(f"{where_of(syns[0])}: compartment bias {bad} is not mantissa << exponent in "
                          f"{chip['name']}'s {chip['bias_mant_bits']}-bit mantissa, exponent 0..{chip['bias_exp_max']}")
