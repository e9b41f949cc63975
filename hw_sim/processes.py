"""The process graph: what runs on the chip, as data (Lava's Process side of its Process/ProcessModel split).

A :class:`Process` has typed ports (its ``sources`` are summed into the input port
``in``; a dual-spike matmul also reads the ``dyn`` and ``spk`` operand ports; every
process has one output port ``out``), integer parameters and typed attributes: one frozen
dataclass per kind (:data:`KIND_ATTRS`), whose docstring states the kind's integer
equation, per time step ``t`` and per sample, all values integers. The fake-quant torch
model (``exporters.quantize.fakequant``) and the simulator (``hw_sim.executor``) are two
separate implementations of these equations; each binds one kernel per kind in an
explicit table (``tests/hw_sim/test_kernel_tables.py`` checks that every table covers
every kind). Integer helpers shared by both live in :mod:`hw_sim.arith`.

Values are integers in units of ``2**exponent`` times a per-value positive ``scale``
(folded into the weights or thresholds of whatever reads them); ``Process.exponent`` and
``Process.scale`` record them so reports and the readout can state real values.

Each attribute field carries its type and its format range as data (``field`` metadata:
``min``/``max`` or ``choices``); the validating artifact reader (``artifact_check``) checks
fields from that data; ranges that depend on the chip or on other fields are checked there
per kind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .products import FORMS

MAX_DIM = 1 << 16    # kernel, stride, padding, dilation, groups, heads (far above any real layer)
MAX_SHIFT = 64       # power-of-two shifts of accumulators (an int64 accumulator has 63 bits)
RESETS = ("zero", "subtract", "rate")   # a neuron's reset rules (NeuronAttrs.reset)
RUNNING = ("none", "inclusive", "exclusive")   # a sum's running-count modes (SumAttrs.running)
MAX_WIDTH = 32       # bit widths of stored values (the executor keeps integers exact in float64)


def _int(lo: int, hi: int, doc: str, **kw):
    return field(metadata={"type": int, "min": lo, "max": hi, "doc": doc}, **kw)


def _pair(lo: int, doc: str, **kw):
    return field(metadata={"type": "pair", "min": lo, "max": MAX_DIM, "doc": doc}, **kw)


def _flag(doc: str, **kw):
    return field(metadata={"type": bool, "doc": doc}, **kw)


def _choice(choices: tuple[str, ...], doc: str, **kw):
    return field(metadata={"type": str, "choices": choices, "doc": doc}, **kw)


def _real(lo: float, hi: float, doc: str):
    return field(metadata={"type": float, "min": lo, "max": hi, "doc": doc})


class Attrs:
    """Base of the per-kind attribute dataclasses (frozen: change one with ``dataclasses.replace``)."""

    kind: ClassVar[str]
    spiking: ClassVar[bool] = False   # the output is binary spikes
    host: ClassVar[bool] = False      # runs on the embedded processor at every step, not on a neuro core

    def to_dict(self) -> dict:
        """The attributes as a JSON-ready dict (pairs as lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}


def sat_limit(bits: int) -> int:
    """``2**(bits-1) - 1``: the largest magnitude a ``bits``-bit signed value saturates at (the range is
    symmetric, ``[-limit, limit]``, as Lava's bit-accurate LIF clips its membrane)."""
    return (1 << (bits - 1)) - 1


@dataclass(frozen=True)
class GradedAttrs(Attrs):
    """Mixin of the kinds whose graded output can grow past its inputs' magnitude (a weighted sum, a
    sum of sources, a product, a window sum): their output saturates at ``out_bits`` signed,
    ``out = sat(out, out_bits) = clip(out, -(2**(out_bits-1)-1), 2**(out_bits-1)-1)``, where the chip's
    compartment or graded payload saturates. A kind joins by inheriting this class (one line). A
    max-pool, flatten, spike gate or attention gate cannot grow a magnitude (a gate is at most 1), so
    they have no ``out_bits``. The artifact requires the field (``artifact_check``); ``None``, allowed
    only in a graph built in Python, means no saturation."""

    out_bits: int | None = _int(2, MAX_WIDTH, "signed width the output saturates at (at most the chip's "
                                "state_bits)", default=None, kw_only=True)


@dataclass(frozen=True)
class InputAttrs(Attrs):
    """``input`` (host): ``out = clip(round(x / 2**exponent), -(2**(bits-1)-1), 2**(bits-1)-1)``
    (round half to even, in float64), ``x`` the real pixels or frames."""

    kind: ClassVar[str] = "input"
    bits: int = _int(2, 16, "signed width of the input values")


@dataclass(frozen=True)
class SynapseAttrs(GradedAttrs):
    """``synapse``: ``acc = W . in`` (``op='conv'``: a 2-D convolution with ``stride``, ``padding``,
    ``dilation``, ``groups``; ``op='dense'``: a matrix product; ``W`` the ``weight_bits``-bit signed
    mantissas, ``|W| <= 2**(weight_bits-1) - 1``); ``out = sat(shift(acc, shift) + bias, out_bits)`` where
    ``shift`` is :func:`hw_sim.arith.shift_round` (``a * 2**k`` for ``k >= 0``, else
    ``floor((a + 2**(-k-1)) / 2**-k)``, round half up). Binary input: accumulate-only (AC);
    ``graded_input``: multiply-accumulate (MAC). A dense synapse has no geometry (``None``).
    On the chip ``shift`` is ``weight_exp + input_align_bits`` and ``out`` is in the membrane's unit;
    exact for ``weight_exp >= 0``, not for a negative one (the chip floors ``acc`` to ``2**-weight_exp``
    before its 6-bit alignment; ``hw_sim/ARTIFACT.md``, *Chip formats*)."""

    kind: ClassVar[str] = "synapse"
    op: str = _choice(("conv", "dense"), "conv or dense")
    shift: int = _int(-MAX_SHIFT, MAX_SHIFT, "power of two applied to the accumulator")
    graded_input: bool = _flag("the input is graded (MAC), not binary spikes (AC)")
    weight_bits: int = _int(2, MAX_WIDTH, "signed width of the weight mantissas (the chip's weight_bits)")
    stride: tuple[int, int] | None = _pair(1, "conv stride", default=None)
    padding: tuple[int, int] | None = _pair(0, "conv zero padding", default=None)
    dilation: tuple[int, int] | None = _pair(1, "conv dilation", default=None)
    groups: int | None = _int(1, MAX_DIM, "conv groups", default=None)

    GEOMETRY: ClassVar[tuple[str, ...]] = ("stride", "padding", "dilation", "groups")

    def __post_init__(self):
        given = [k for k in self.GEOMETRY if getattr(self, k) is not None]
        if self.op == "conv" and len(given) != len(self.GEOMETRY):
            missing = [k for k in self.GEOMETRY if k not in given]
            raise ValueError(f"a conv synapse needs {', '.join(missing)}")
        if self.op == "dense" and given:
            raise ValueError(f"a dense synapse has no {given[0]}")


@dataclass(frozen=True)
class NeuronAttrs(Attrs):
    """``neuron``, CUBA-LIF: ``u = sat(decay(u, du) + (in << in_shift))``; ``v = sat(decay(v, dv) + u + bias)``;
    ``s = v >= vth``; then ``v = 0 where s`` (``reset='zero'``, Loihi's CUBA compartment) or ``v = v - vth where s``
    (``reset='subtract'``, the soft reset of a converted QCFS neuron: Bu et al., ICLR 2022, Theorem 2);
    ``reset='rate'`` is not CUBA but the rate-normalised IF of a cumulative product (a programmable
    neuron, ``hw_sim/ratenorm.py``): ``P += in << in_shift``, ``s = 2 P + 2 t^2 bias >= t vth (2 N + 1)``
    (``t`` from 1, ``N`` its spikes before ``t``; ``du``, ``dv``, ``v0`` unused, every register bounded
    within ``state_bits`` by the lowering);
    ``decay(x, d) = sign(x) * ((|x| * (2**decay_bits - d)) >> decay_bits)``
    (truncating toward zero; Loihi: ``decay_bits = 12``); ``sat`` clips to the symmetric ``state_bits``
    signed range ``[-(2**(state_bits-1)-1), 2**(state_bits-1)-1]`` (:func:`sat_limit`), as Lava's
    ``PyLifModelBitAcc`` clips ``v``. Lava *wraps* ``u`` modulo ``2**state_bits`` instead; here ``u``
    saturates too (a wrapped current flips sign), and export refuses a model whose calibration data
    saturates anything, so only inputs outside the calibration reach either rule.
    ``u`` starts at 0, ``v`` at ``v0``. Params: ``vth`` (per neuron or one for all), optional ``bias``
    (a constant added every step, Loihi's compartment bias) and ``v0`` (the initial membrane), each
    absent meaning 0. Output: binary spikes ``s``."""

    kind: ClassVar[str] = "neuron"
    spiking: ClassVar[bool] = True
    du: int = _int(0, 1 << MAX_WIDTH, "current decay, in units of 2**-decay_bits (at most 2**decay_bits)")
    dv: int = _int(0, 1 << MAX_WIDTH, "voltage decay, in units of 2**-decay_bits (at most 2**decay_bits)")
    state_bits: int = _int(2, MAX_WIDTH, "signed width of u and v (at most the chip's state_bits)")
    decay_bits: int = _int(1, 24, "resolution of du, dv (the chip's decay_bits)")
    in_shift: int = _int(0, MAX_SHIFT, "power of two on the summed input: the weight exponent of the synapses "
                         "that bring it (a product compartment's weight-1 output synapse)", default=0, kw_only=True)
    reset: str = _choice(RESETS, "after a spike: v = 0 (zero) or v - vth (subtract; the chip's subtract_reset); "
                         "rate: the rate-normalised IF (hw_sim/ratenorm.py; the chip's product_neurons)",
                         default="zero", kw_only=True)

    @property
    def unity(self) -> int:
        """``2**decay_bits``: a decay of this much clears the state in one step."""
        return 1 << self.decay_bits


@dataclass(frozen=True)
class SumAttrs(GradedAttrs):
    """``sum``: ``out = sat(in, out_bits)`` (the sum of the sources): a residual stream point, carried on the chip
    as graded spikes (Loihi 2 payloads) from integrator neurons; ``alias`` marks a pass-through
    that costs nothing (a folded scale); ``running`` makes it a running count of spikes
    (the cumulative product's counters ``C_t``, ``hw_sim/ratenorm.py``). Spikformer's residuals add
    spikes: small non-negative integers in unit 1; a synapse reading them is graded (MAC)."""

    kind: ClassVar[str] = "sum"
    alias: bool = _flag("a pass-through of one source that costs nothing", default=False)
    running: str = _choice(RUNNING, "none; inclusive: a spike counter, out[t] = sat(sum_{tau <= t} in[tau]); "
                           "exclusive: out[t] = sat(sum_{tau < t} in[tau]) (its compartment keeps its value: no decay)",
                           default="none", kw_only=True)


@dataclass(frozen=True)
class _ProductAttrs(GradedAttrs):
    form: str = _choice(FORMS, "product form (hw_sim/products.py)")
    heads: int = _int(1, MAX_DIM, "attention heads")


@dataclass(frozen=True)
class DsmmAttrs(_ProductAttrs):
    """``dsmm``, the dual-spike matmul: per head ``h``, ``out[h] = sat(L[h] @ R[h], out_bits)`` with the views of the
    ``dyn`` and ``spk`` operands that product ``form`` names (:data:`hw_sim.products.PRODUCT_FORMS`:
    DSSA's ``y1T@s`` ``out[h] = y[h, :d]^T @ spk[h]`` and ``y2@a`` ``out[h] = y[h, d:] @ spk[h]``;
    Spikformer's ``kT@v``, ``q@kv``, ``q@kT``, ``qk@v``). A gated accumulation: a spike of ``spk``
    adds one row / column of ``dyn`` (AC work, ``ac_per_spike`` each)."""

    kind: ClassVar[str] = "dsmm"


@dataclass(frozen=True)
class ProdmmAttrs(_ProductAttrs):
    """``prodmm``, the same product ``out[h] = sat(L[h] @ R[h], out_bits)`` as ``dsmm`` (same ``form``, ``heads``, same
    integers), built from what a shipping chip has: one product compartment ``P[h, r, k, c]`` per
    term (Lava's ``ProdNeuron`` with ``exp = 0``, ``vth = 0``: ``v = a1 * a2``, sent as a graded spike
    when ``v != 0``), flat order ``[h, r, k, c]``; port 1 (``a1``) gets ``L[h, r, k]`` and port 2
    (``a2``) ``R[h, k, c]`` over weight-1 static synapses (the dynamic operand's value arrives as a
    graded spike, the spike operand's as a binary one), and ``P[h, r, k, c]`` sends ``a1 * a2`` over
    one weight-1 synapse into the reader's compartment of ``out[h, r, c]``, whose dendrite sums
    over ``k``: ``out[h, r, c] = sum_k L[h, r, k] * R[h, k, c]``. One operand is binary, so a
    product is never wider than the dynamic operand. One chip step per product layer (no
    time multiplexing: ``hw_sim/prodneuron.py`` says why)."""

    kind: ClassVar[str] = "prodmm"


@dataclass(frozen=True)
class _WindowAttrs(Attrs):
    kernel: tuple[int, int] = _pair(1, "window size")
    stride: tuple[int, int] = _pair(1, "window stride")
    padding: tuple[int, int] = _pair(0, "zero padding (at most half the window)")


@dataclass(frozen=True)
class SumPoolAttrs(_WindowAttrs, GradedAttrs):
    """``sumpool``: ``out[c, i, j] = sat(sum of in[c], out_bits)`` over the window at ``(i, j)`` (zero padding)."""

    kind: ClassVar[str] = "sumpool"


@dataclass(frozen=True)
class MaxPoolAttrs(_WindowAttrs):
    """``maxpool``: ``out[c, i, j] = max of in[c]`` over the window at ``(i, j)`` (padding never wins)."""

    kind: ClassVar[str] = "maxpool"


@dataclass(frozen=True)
class FlattenAttrs(Attrs):
    """``flatten``: ``out = reshape(in, out_shape)`` (C order)."""

    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class AttnGateAttrs(Attrs):
    """``attngate``: MA-SNN's per-step channel / spatial attention gates; ``hw_sim/attngate.py``
    states the integer arithmetic (integer pooling, 8-bit MLP / conv mantissas with shifts, a
    256-entry sigmoid table, ``out = relu(shift(x * gate, -gate_bits))``). Runs on the embedded
    processor every step (MACs), not on a neuro core. Output in the input's unit. The shifts of
    a gate that is absent (``c`` / ``s`` not in ``gates``) are ``None``."""

    kind: ClassVar[str] = "attngate"
    host: ClassVar[bool] = True
    gates: str = _choice(("c", "s", "cs"), "channel (c) and / or spatial (s) gates")
    frac_bits: int = _int(0, 16, "internal scores in units of 2**-frac_bits")
    lut_frac_bits: int = _int(0, 16, "sigmoid table input step 2**-lut_frac_bits (at most frac_bits)")
    gate_bits: int = _int(0, 16, "gate values in units of 2**-gate_bits")
    ca_shift1_avg: int | None = _int(-MAX_SHIFT + 2, MAX_SHIFT - 2, "channel MLP layer 1 (avg) shift", default=None)
    ca_shift1_max: int | None = _int(-MAX_SHIFT + 2, MAX_SHIFT - 2, "channel MLP layer 1 (max) shift", default=None)
    ca_shift2: int | None = _int(-MAX_SHIFT + 2, MAX_SHIFT - 2, "channel MLP layer 2 shift", default=None)
    sa_shift: int | None = _int(-MAX_SHIFT + 2, MAX_SHIFT - 2, "spatial conv shift", default=None)

    def __post_init__(self):
        for key, gate in (("ca_shift1_avg", "c"), ("ca_shift1_max", "c"), ("ca_shift2", "c"), ("sa_shift", "s")):
            if (getattr(self, key) is None) == (gate in self.gates):
                raise ValueError(f"gates {self.gates!r} {'need' if gate in self.gates else 'have no'} {key}")


@dataclass(frozen=True)
class GateAttrs(Attrs):
    """``gate``: random spike masking (Masked Spiking Transformer, Wang et al. ICCV 2023), on spikes only:
    ``out[i] = in[i]`` when ``gate_hash(seed, gate_id, t, i) >= round(ratio * 2**32)``, else 0 (``i`` the
    flat C-order index, ``t`` the step from 0; the same for every sample). The hash is
    ``sresformer.spike_gate.gate_hash`` (both implementations call that one function). On the chip it
    sits at the source: a dropped spike is not sent, so it costs no message and no synaptic op
    downstream; the draw itself is not charged."""

    kind: ClassVar[str] = "gate"
    spiking: ClassVar[bool] = True
    ratio: float = _real(0.0, 1.0, "fraction of spikes dropped")
    seed: int = _int(-(2 ** 63), 2 ** 63 - 1, "random seed")
    gate_id: int = _int(-(2 ** 63), 2 ** 63 - 1, "which gate of the model")


#: The process kinds and their attribute classes, in the order the format lists them.
KIND_ATTRS: dict[str, type[Attrs]] = {c.kind: c for c in (
    InputAttrs, SynapseAttrs, NeuronAttrs, SumAttrs, DsmmAttrs, ProdmmAttrs, SumPoolAttrs, MaxPoolAttrs, FlattenAttrs,
    AttnGateAttrs, GateAttrs)}
KINDS = tuple(KIND_ATTRS)
HOST_KINDS = tuple(k for k, c in KIND_ATTRS.items() if c.host)   # on the embedded processor every step
GRADED_KINDS = tuple(k for k, c in KIND_ATTRS.items() if issubclass(c, GradedAttrs))   # outputs saturate at out_bits
PRODUCT_KINDS = ("dsmm", "prodmm")   # products of two dynamic operands (hw_sim/products.py): ``operands``, no sources


def make_attrs(kind: str, values: dict) -> Attrs:
    """The attribute dataclass of ``kind`` from a dict (lists become tuples); ``ValueError`` naming an
    unknown kind, an unknown key, a missing key or an inconsistent combination."""
    cls = KIND_ATTRS.get(kind)
    if cls is None:
        raise ValueError(f"unknown process kind {kind!r} (known: {', '.join(KINDS)})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    extra = sorted(set(values) - set(fields))
    if extra:
        raise ValueError(f"a {kind} has no attribute {extra[0]!r} (known: {', '.join(fields) or 'none'})")
    missing = [n for n, f in fields.items() if n not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"a {kind} needs attribute {missing[0]!r}")
    return cls(**{k: tuple(v) if isinstance(v, (list, np.ndarray)) else v for k, v in values.items()})


@dataclass
class Process:
    """One process: kind, input sources (summed), operands, output shape per sample, integer state.

    ``attrs`` is the kind's attribute dataclass; a dict is converted (:func:`make_attrs`).
    """

    name: str
    kind: str
    sources: list[str]
    out_shape: tuple[int, ...]
    operands: tuple[str, ...] = ()
    params: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: Attrs | dict = field(default_factory=dict)
    exponent: int = 0            # output value unit 2**exponent (graded outputs)
    scale: np.ndarray | float = 1.0
    static: bool = False         # same output at every step (computed once per inference)

    def __post_init__(self):
        if self.kind not in KIND_ATTRS:
            raise ValueError(f"unknown process kind {self.kind!r}")
        if isinstance(self.attrs, dict):
            try:
                self.attrs = make_attrs(self.kind, self.attrs)
            except (TypeError, ValueError) as e:
                raise ValueError(f"process {self.name!r}: {e}") from None
        elif type(self.attrs) is not KIND_ATTRS[self.kind]:
            raise ValueError(f"process {self.name!r}: a {self.kind} takes {KIND_ATTRS[self.kind].__name__}, "
                             f"not {type(self.attrs).__name__}")

    @property
    def spiking(self) -> bool:
        """True when the output is binary spikes (a neuron's, or a spike gate's)."""
        return type(self.attrs).spiking

    @property
    def host(self) -> bool:
        """True for a kind that runs on the embedded processor at every step (the MA gates)."""
        return type(self.attrs).host


#: a neuron's optional params (absent: 0), beside its required ``vth`` (NeuronAttrs)
NEURON_OPTIONAL = ("bias", "v0")


def neuron_param(p: Process, key: str) -> np.ndarray | None:
    """Neuron param ``key`` (``vth``, ``bias``, ``v0``) as int64 of ``p.out_shape`` (a scalar array when it
    holds one value for all), or None for an absent optional one."""
    if key not in p.params:
        return None
    arr = np.asarray(p.params[key], dtype=np.int64)
    return arr.reshape(p.out_shape) if arr.size > 1 else arr.reshape(())


@dataclass
class ProcessGraph:
    """Processes in execution order; ``output`` names the process whose values are the logits."""

    processes: dict[str, Process]
    output: str
    T: int
    input_shape: tuple[int, ...]
    input_static: bool = True
    metadata: dict = field(default_factory=dict)

    def __iter__(self):
        return iter(self.processes.values())

    def spikes_only(self, names) -> bool:
        """True when the sum of the values ``names`` is 0/1 spikes: a single neuron's or spike gate's output."""
        return len(names) == 1 and self.processes[names[0]].spiking

    def readout_scale(self) -> np.ndarray:
        """Multiplier from the output integers to real logits: ``2**exponent * scale``."""
        p = self.processes[self.output]
        return np.asarray(2.0 ** p.exponent * np.asarray(p.scale, dtype=np.float64))
