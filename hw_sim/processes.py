"""The process graph: what runs on the chip, as data (Lava's Process side of its Process/ProcessModel split).

A :class:`Process` has typed ports (its ``sources`` are summed into the input port
``in``; a dual-spike matmul also reads the ``dyn`` and ``spk`` operand ports; every
process has one output port ``out``), integer parameters and scalar attributes. The
fake-quant torch model (``exporters.quantize.fakequant``) and the simulator
(``hw_sim.executor``) are two separate implementations of the same semantics, stated
here per kind (per time step ``t``, per sample; all values are integers):

``input``      host: ``out = clip(round(x / 2**exponent), -(2**(bits-1)-1), 2**(bits-1)-1)``
``synapse``    ``acc = W . in`` (conv or dense; ``W`` the int8 mantissas); ``out = shift(acc, shift) + bias``
               where ``shift(a, k) = a * 2**k`` for ``k >= 0`` and ``floor((a + 2**(-k-1)) / 2**-k)``
               (round half up) for ``k < 0``. Binary input: accumulate-only (AC); graded input: MAC.
``neuron``     CUBA-LIF: ``u = decay(u, du) + in``; ``v = sat(decay(v, dv) + u)``; ``s = v >= vth``;
               ``v = 0 where s``; ``decay(x, d) = sign(x) * ((|x| * (4096 - d)) >> 12)`` (Loihi's
               12-bit decay, truncating toward zero); ``sat`` clips to ``state_bits`` signed.
               Output: binary spikes.
``sum``        ``out = in`` (the sum of the sources): a residual stream point, carried on the chip
               as graded spikes (Loihi 2 payloads) from integrator neurons; ``alias`` marks a
               pass-through that costs nothing (a folded scale). Spikformer's residuals add
               spikes: small non-negative integers in unit 1; a synapse reading them is graded
               (MAC). The alternative: one AC projection per spike source of the stream.
``dsmm``       DSSA's dual-spike matmul, per head ``h`` (``y = dyn`` reshaped ``[heads, 2d, N]``):
               ``form='y1T@s'``: ``out[h] = y[h, :d]^T @ spk[h]``, ``spk`` reshaped ``[heads, d, HW]``;
               ``form='y2@a'``:  ``out[h] = y[h, d:] @ spk[h]``, ``spk`` reshaped ``[heads, N, HW]``.
               A gated accumulation: every spike adds one column of the dynamic operand (AC work).
               Spikformer's SSA forms (:data:`SSA_FORMS`): ``out[h] = L[h] @ R[h]`` where each operand
               is viewed per head as ``[heads, shape[0] / heads, prod(shape[1:])]`` (transposed where
               the table says), the output as ``[heads * rows(L), cols(R)]`` reshaped to ``out_shape``:
               ``'kT@v'``  ``K[h] @ V[h]^T``   (K, V binary ``[d, N]``)  -> ``[heads*d, d, 1]``;
               ``'q@kv'``  ``KV[h]^T @ Q[h]``  (KV graded ``[d, d]``, Q binary) -> ``[heads*d, H, W]``;
               ``'q@kT'``  ``Q[h]^T @ K[h]``   (Q, K binary ``[d, N]``)  -> ``[heads*N, H, W]``;
               ``'qk@v'``  ``V[h] @ QK[h]^T``  (QK graded ``[N, N]``, V binary) -> ``[heads*d, H, W]``.
               The same gated accumulation: a spike of ``spk`` adds one row / column of ``dyn``
               (``dyn`` binary in ``'kT@v'``/``'q@kT'``: it adds bits, i.e. counts coincidences),
               so AC = spikes of ``spk`` x the length of that row / column: ``d`` for ``'kT@v'``
               and ``'q@kv'``, ``N`` for ``'q@kT'`` and ``'qk@v'`` (an AND of both spike trains
               would cost only the coincident pairs; we count the stored-operand reads).
``sumpool``    window sums (kernel, stride, padding); ``maxpool`` window maxima (padding never wins);
``flatten``    reshape.
``attngate``   MA-SNN's per-step channel / spatial attention gates (``hw_sim/attngate.py`` states
               the integer arithmetic: integer pooling, 8-bit MLP / conv mantissas with shifts, a
               256-entry sigmoid table, ``out = relu(shift(x * gate, -8))``); runs on the embedded
               processor every step (MACs), not on a neuro core. Output in the input's unit.
``gate``       random spike masking (Masked Spiking Transformer, Wang et al. ICCV 2023), on spikes only:
               ``out[i] = in[i]`` when ``gate_hash(seed, gate_id, t, i) >= round(ratio * 2**32)``, else 0
               (``i`` the flat C-order index, ``t`` the step from 0; the same for every sample). The hash is
               ``sresformer.spike_gate.gate_hash`` (a stateless counter-based generator: both implementations
               call that one function). On the chip it sits at the source: a dropped spike is not sent, so
               it costs no message and no synaptic op downstream; the draw itself is not charged.

Values are integers in units of ``2**exponent`` times a per-value positive ``scale``
(folded into the weights or thresholds of whatever reads them); ``Process.exponent`` and
``Process.scale`` record them so reports and the readout can state real values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .products import SSA_FORMS

KINDS = ("input", "synapse", "neuron", "sum", "dsmm", "sumpool", "maxpool", "flatten", "attngate", "gate")
HOST_KINDS = ("attngate",)  # run on the embedded processor at every step (not on neuro cores)
DECAY_UNITY = 4096  # Loihi's 12-bit decay constants: du, dv in 1/4096 (Davies et al. 2018)


def head_view(shape, heads: int) -> tuple[int, int]:
    """``(rows, cols)`` of one head of an SSA operand of per-sample ``shape``: ``[C/heads, prod(rest)]``."""
    if shape[0] % heads:
        raise ValueError(f"an operand of {shape[0]} channels does not split into {heads} heads")
    return shape[0] // heads, int(np.prod(shape[1:]))


def ssa_dims(form: str, heads: int, dyn_shape, spk_shape) -> dict:
    """Per-head matrix shapes of an SSA form: ``left``/``right`` (after transposes), ``out``,
    ``k`` (contraction length) and ``spk_side`` (``'left'`` or ``'right'``)."""
    lo, lt, ro, rt = SSA_FORMS[form]
    view = {"dyn": head_view(dyn_shape, heads), "spk": head_view(spk_shape, heads)}
    left = view[lo][::-1] if lt else view[lo]
    right = view[ro][::-1] if rt else view[ro]
    if left[1] != right[0]:
        raise ValueError(f"dsmm {form}: per-head operands {left} and {right} do not multiply")
    return {"left": left, "right": right, "out": (left[0], right[1]), "k": left[1],
            "spk_side": "left" if lo == "spk" else "right"}


@dataclass
class Process:
    """One process: kind, input sources (summed), operands, output shape per sample, integer state."""

    name: str
    kind: str
    sources: list[str]
    out_shape: tuple[int, ...]
    operands: tuple[str, ...] = ()
    params: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    exponent: int = 0            # output value unit 2**exponent (graded outputs)
    scale: np.ndarray | float = 1.0
    static: bool = False         # same output at every step (computed once per inference)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown process kind {self.kind!r}")

    @property
    def spiking(self) -> bool:
        """True when the output is binary spikes."""
        return self.kind == "neuron"


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
        return len(names) == 1 and self.processes[names[0]].kind in ("neuron", "gate")

    def readout_scale(self) -> np.ndarray:
        """Multiplier from the output integers to real logits: ``2**exponent * scale``."""
        p = self.processes[self.output]
        return np.asarray(2.0 ** p.exponent * np.asarray(p.scale, dtype=np.float64))
