"""The ``attngate`` process: MA-SNN's per-step channel / spatial attention gates in integers.

The gates multiply two data-dependent values (the input and a gate computed from it), so
they cannot run on a neuro core, whose synapses hold static weights. They run on the
chip's embedded processor (Loihi 2's x86 Lakemont cores), every step, as multiply-
accumulates; the gated value is sent back to the neuro cores as graded spikes.

Integer semantics, per sample and step, input ``x`` ``[C, H, W]`` (integers in the unit
``u = 2**e * scale`` of the value it gates; the output keeps that unit). ``shift`` is
``hw_sim.arith.shift_round`` (round half up). Internal scores are in units of
``2**-FRAC_BITS``::

    CA (if 'c' in gates):
      s[c] = sum_{h,w} x[c,h,w]                    m[c] = max_{h,w} x[c,h,w]
      ha = relu(shift(ca_w1_avg @ s, ca_shift1_avg))   hm = relu(shift(ca_w1_max @ m, ca_shift1_max))
      z[c] = shift(ca_w2 @ ha, ca_shift2) + shift(ca_w2 @ hm, ca_shift2) + ca_bias[c]
      x = shift(x * lut[idx(z)][:, None, None], -GATE_BITS)
    SA (if 's' in gates), on that x:
      s2 = [sum_c x ; max_c x]                     (2 maps [H, W])
      z = shift(conv2d(s2, sa_weight, padding k//2), sa_shift) + sa_bias
      x = shift(x * lut[idx(z)][None], -GATE_BITS)
    out = max(x, 0)

    idx(z) = clip(shift(z, -(FRAC_BITS - LUT_FRAC_BITS)), -LUT_SIZE/2, LUT_SIZE/2 - 1) + LUT_SIZE/2
    lut[i] = round(2**GATE_BITS * sigmoid((i - LUT_SIZE/2) / 2**LUT_FRAC_BITS))   (0 .. 256)

The float model's averages (``sum / HW``, ``sum / C``) and the input unit ``u`` fold into
the first-layer weights before their 8-bit quantization (``ca_w1_avg = W1 u / HW``,
``ca_w1_max = W1 u``, ``sa_weight[:, 0] = W[:, 0] u / C``, ``sa_weight[:, 1] = W[:, 1] u``,
all in units of ``2**-FRAC_BITS``); the gate biases ``b_c``, ``b_s`` are rounded to that unit.

Word widths on the embedded processor. The gate reads 24-bit graded values (the chip's state
width, ``state_bits``), its mantissas are ``WEIGHT_BITS``-bit signed, its table entries 9-bit
unsigned (0..256) and its gated output never exceeds its input (every gate is at most
``2**GATE_BITS``), so the output fits the input's graded payload. The intermediates do not
fit a 32-bit word: a channel sum reaches ``H W 2**23`` and an MLP accumulator ``127 C H W 2**23``
(``hw_sim.bounds.gate_accumulator_bound``); Loihi's embedded cores are 32-bit x86 (Lakemont,
Davies et al. 2018 for Loihi 1; Intel's Loihi 2 brief, 2021, for Loihi 2's six), so they carry
them in 64-bit integer pairs, as both our implementations do (int64, exact). The extra
instructions of that double-word arithmetic are not charged.

Operations per evaluation (counted by ``hw_sim``, charged to the embedded processor):
MACs = the MLP on both pooled vectors (``4 C hidden``), the spatial conv on both maps
(``2 k^2 H W``), one multiply per element per gate (``C H W``); ACs = the pooling adds and
max comparisons (``2 C H W`` per gate).
"""

from __future__ import annotations

import numpy as np

from .arith import quantize_mantissas
from .processes import AttnGateAttrs

FRAC_BITS = 8        # internal score unit 2**-8
LUT_FRAC_BITS = 4    # sigmoid table input step 1/16
LUT_SIZE = 256       # 8-bit table index: scores clipped to [-8, 8 - 1/16]
GATE_BITS = 8        # gate values in units of 1/256 (0 .. 256)
WEIGHT_BITS = 8      # the gate's MLP / conv mantissas (this spec's format; the embedded processor computes in int64)


def sigmoid_lut() -> np.ndarray:
    """The gate table: ``round(256 sigmoid((i - 128) / 16))`` for ``i`` in 0..255 (int64)."""
    z = (np.arange(LUT_SIZE, dtype=np.float64) - LUT_SIZE // 2) / 2 ** LUT_FRAC_BITS
    return np.floor(2 ** GATE_BITS / (1 + np.exp(-z)) + 0.5).astype(np.int64)


def quantize(w: np.ndarray) -> tuple[np.ndarray, int]:
    """``WEIGHT_BITS``-bit signed mantissas and a power-of-two shift, ``w ~= mant * 2**shift``
    (the lowering's rule, :func:`hw_sim.arith.quantize_mantissas`)."""
    return quantize_mantissas(w, WEIGHT_BITS)


def gate_params(meta: dict, shape, unit: float) -> tuple[dict, AttnGateAttrs]:
    """``(params, attrs)`` of an ``attngate`` process from the NIR metadata and the input unit ``u``."""
    C, H, W = (int(s) for s in shape)
    gates = str(meta["gates"])
    f = lambda k: np.asarray(meta[k], dtype=np.float64)  # noqa: E731
    one = 2.0 ** -FRAC_BITS
    params = {"lut": sigmoid_lut()}
    attrs = {"gates": gates, "frac_bits": FRAC_BITS, "lut_frac_bits": LUT_FRAC_BITS, "gate_bits": GATE_BITS}
    if "c" in gates:
        w1, w2 = f("ca_w1"), f("ca_w2")
        params["ca_w1_avg"], attrs["ca_shift1_avg"] = quantize(w1 * unit / (H * W) / one)
        params["ca_w1_max"], attrs["ca_shift1_max"] = quantize(w1 * unit / one)
        params["ca_w2"], attrs["ca_shift2"] = quantize(w2)
        params["ca_bias"] = np.round(f("ca_bias") / one).astype(np.int64)
    if "s" in gates:
        w = f("sa_weight").copy()
        w[:, 0] *= unit / C / one
        w[:, 1] *= unit / one
        params["sa_weight"], attrs["sa_shift"] = quantize(w)
        params["sa_bias"] = np.round(f("sa_bias") / one).astype(np.int64)
    return params, AttnGateAttrs(**attrs)


def gate_ops(p) -> dict[str, int]:
    """MACs and ACs of one evaluation of ``attngate`` process ``p`` on one sample (see the module doc)."""
    C, H, W = (int(s) for s in p.out_shape)
    n = C * H * W
    mac = ac = 0
    if "c" in p.attrs.gates:
        mac += 4 * C * int(np.asarray(p.params["ca_w2"]).shape[1]) + n
        ac += 2 * n
    if "s" in p.attrs.gates:
        mac += 2 * int(np.asarray(p.params["sa_weight"]).shape[-1]) ** 2 * H * W + n
        ac += 2 * n
    return {"mac": mac, "ac": ac}
