"""The fake-quant model: a torch module computing exactly the chip's integer arithmetic.

It runs a :class:`~hw_sim.processes.ProcessGraph` with float64 tensors that hold
integers (exact up to 2**53, far above the 24-bit state), following the per-kind
semantics stated in ``hw_sim/processes.py``. It is the reference the simulator
is checked against spike for spike, and the model whose accuracy the export reports.
Every saturation (a neuron's ``u`` and ``v``, a graded output at ``out_bits``) is recorded by
each :meth:`FakeQuantModel.run`: how many values it changed and the largest magnitude it cut
(:attr:`FakeQuantModel.saturated`, :attr:`FakeQuantModel.saturation_peak`), so the export can
refuse a model that leaves its calibrated range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hw_sim.arith import shift_round
from hw_sim.liveness import last_reads
from hw_sim.processes import NEURON_OPTIONAL, ProcessGraph, neuron_param, sat_limit
from hw_sim.products import PRODUCT_FORMS
from sresformer.spike_gate import apply_gate


def decay(x: torch.Tensor, d: int, bits: int) -> torch.Tensor:
    """The chip's decay ``sign(x) * ((|x| * (2**bits - d)) >> bits)``: truncation toward zero."""
    unity = 1 << bits
    if d == 0:
        return x
    if d == unity:
        return torch.zeros_like(x)
    return torch.sign(x) * torch.floor(x.abs() * (unity - d) / unity)


def saturate(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Clip to the symmetric signed ``bits``-bit range ``[-(2**(bits-1)-1), 2**(bits-1)-1]``."""
    q = sat_limit(bits)
    return x.clamp(-q, q)


def _fold(x):
    return x.flatten(0, 1), x.shape[:2]


def rate_neuron(x: torch.Tensor, vth, bias, in_shift: int = 0) -> torch.Tensor:
    """Spikes ``[T, ...]`` of the rate-normalised IF (``hw_sim/ratenorm.py``) on integer inputs ``x [T, ...]``, by
    its closed form with the products the chip's additions avoid: ``s_t = 2 P_t + 2 t^2 bias >= t vth (2 N_{t-1} + 1)``,
    ``P_t`` the inputs (times ``2**in_shift``) summed over steps 1..t, ``N`` the spikes before ``t``."""
    P = torch.zeros_like(x[0])
    N = torch.zeros_like(x[0])
    out = torch.empty_like(x)
    for t in range(1, x.shape[0] + 1):
        P = P + x[t - 1] * 2 ** in_shift
        s = 2 * P + 2 * t * t * bias >= t * vth * (2 * N + 1)
        out[t - 1] = s
        N = N + s
    return out


def dsmm_product(p, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Dual-spike matmul ``p`` on operands ``y`` (``dyn``), ``s`` (``spk``), each ``[T or 1, B, ...]``:
    per head ``L @ R`` of the operands' ``[heads, C/heads, prod(rest)]`` views (hw_sim/products.py)."""
    form, heads = PRODUCT_FORMS[p.attrs.form], p.attrs.heads
    steps = max(y.shape[0], s.shape[0])
    B = y.shape[1]
    ops = {"dyn": y.expand(steps, *y.shape[1:]), "spk": s.expand(steps, *s.shape[1:])}

    def view(name, transpose):
        v = ops[name].reshape(steps, B, heads, ops[name].shape[2] // heads, -1)
        if name == "dyn" and form.dyn_half is not None:   # DSSA: y = [y1; y2] per head, one half used
            half = v.shape[3] // 2
            v = v[:, :, :, form.dyn_half * half:(form.dyn_half + 1) * half]
        return v.transpose(-1, -2) if transpose else v

    out = torch.matmul(view(form.left, form.transpose_left), view(form.right, form.transpose_right))
    return out.reshape(steps, B, *p.out_shape)


class FakeQuantModel(nn.Module):
    """``[B, C, H, W]`` (static, repeated over T) or ``[T, B, C, H, W]`` -> logits ``[B, K]`` (float)."""

    def __init__(self, pg: ProcessGraph, img_size: int | None = None, num_classes: int | None = None):
        super().__init__()
        self.pg = pg
        self.T = pg.T
        self.in_channels = pg.input_shape[0]
        self.img_size = img_size or (pg.input_shape[-1] if len(pg.input_shape) == 3 else None)
        self.num_classes = num_classes or int(pg.processes[pg.output].out_shape[0])
        self.register_buffer("readout", torch.from_numpy(pg.readout_scale()).double(), persistent=False)
        #: per process, over the last :meth:`run`: values its saturations changed, and the largest
        #: magnitude before the clamp among them (only processes whose clamps acted)
        self.saturated: dict[str, int] = {}
        self.saturation_peak: dict[str, float] = {}
        #: ``probe(process, t, u, v)``, when set: every neuron's state at every step, ``v`` before its reset
        self.probe = None

    def _sat(self, p, x: torch.Tensor, bits: int | None) -> torch.Tensor:
        """``x`` saturated at ``bits`` signed (``None``: unchanged), the values it changes recorded for ``p``."""
        if bits is None:
            return x
        mag = x.abs()
        n = int((mag > sat_limit(bits)).sum())
        if n:
            self.saturated[p.name] = self.saturated.get(p.name, 0) + n
            self.saturation_peak[p.name] = max(self.saturation_peak.get(p.name, 0.0), float(mag.max()))
        return saturate(x, bits)

    # -- one process on whole sequences [T, B, ...] (static ones on [1, B, ...]) ----------------
    # every kernel is ``(self, p, values, x, T)``: ``values`` the outputs so far, ``x`` the host input
    # (only the input process reads it), ``T`` the steps of this run

    @staticmethod
    def _summed(p, values, T: int | None = None):
        """The sum of ``p``'s sources (a static one's single step broadcast); ``T`` steps when given."""
        ins = [values[s] for s in p.sources]
        steps = max(i.shape[0] for i in ins)
        inp = ins[0].expand(steps, *ins[0].shape[1:])
        for other in ins[1:]:
            inp = inp + other
        return inp.expand(T, *inp.shape[1:]) if T is not None and inp.shape[0] == 1 else inp

    def _input(self, p, values, x, T):
        q = 2 ** (p.attrs.bits - 1) - 1
        return torch.round(x.double() / 2.0 ** p.exponent).clamp(-q, q)

    def _synapse(self, p, values, x, T):
        a = p.attrs
        w = torch.from_numpy(p.params["weight"]).double()
        flat, lead = _fold(self._summed(p, values))
        if a.op == "conv":
            acc = F.conv2d(flat, w, None, a.stride, a.padding, a.dilation, a.groups)
            bias = torch.from_numpy(p.params["bias"]).double().view(1, -1, 1, 1)
        else:
            acc = flat @ w.T
            bias = torch.from_numpy(p.params["bias"]).double()
        return self._sat(p, shift_round(acc, a.shift) + bias, a.out_bits).unflatten(0, lead)

    def _neuron(self, p, values, x, T):
        x = self._summed(p, values, T)   # the state evolves at every step, even on a static input
        a = p.attrs
        par = {k: 0.0 if (v := neuron_param(p, k)) is None else torch.from_numpy(v).double()
               for k in ("vth", *NEURON_OPTIONAL)}
        vth = par["vth"]
        if a.reset == "rate":
            return rate_neuron(x, vth, par["bias"], a.in_shift)
        u = torch.zeros_like(x[0])
        v = torch.zeros_like(x[0]) + par["v0"]
        out = torch.empty_like(x)
        for t in range(x.shape[0]):
            u = self._sat(p, decay(u, a.du, a.decay_bits) + x[t] * 2 ** a.in_shift, a.state_bits)
            v = self._sat(p, decay(v, a.dv, a.decay_bits) + u + par["bias"], a.state_bits)
            if self.probe is not None:
                self.probe(p, t, u.clone(), v.clone())
            s = v >= vth
            out[t] = s
            v = v - s * vth if a.reset == "subtract" else v.masked_fill(s, 0.0)
        return out

    def _sum(self, p, values, x, T):
        if p.attrs.running == "none":
            return self._sat(p, self._summed(p, values), p.attrs.out_bits)
        x = self._summed(p, values, T)
        # a counter C_t: an explicit running total, step by step (the executor takes a cumsum)
        total, out = torch.zeros_like(x[0]), torch.empty_like(x)
        for t in range(x.shape[0]):
            before = total
            total = total + x[t]
            out[t] = total if p.attrs.running == "inclusive" else before
        return self._sat(p, out, p.attrs.out_bits)



    def _dsmm(self, p, values, x, T):
        return self._sat(p, dsmm_product(p, values[p.operands[0]], values[p.operands[1]]), p.attrs.out_bits)

    def _sumpool(self, p, values, x, T):
        a = p.attrs
        flat, lead = _fold(self._summed(p, values))
        pooled = F.avg_pool2d(flat, a.kernel, a.stride, a.padding, divisor_override=1)
        return self._sat(p, pooled, a.out_bits).unflatten(0, lead)

    def _maxpool(self, p, values, x, T):
        a = p.attrs
        flat, lead = _fold(self._summed(p, values))
        return F.max_pool2d(flat, a.kernel, a.stride, a.padding).unflatten(0, lead)

    def _flatten(self, p, values, x, T):
        x = self._summed(p, values)
        return x.reshape(*x.shape[:2], *p.out_shape)

    def _attngate(self, p, values, x, T):
        """MA gates per step (``hw_sim/attngate.py``), on ``[T, B, C, H, W]`` in float64."""
        t = lambda k: torch.from_numpy(p.params[k]).double()  # noqa: E731
        a = p.attrs
        lut = t("lut")
        half = lut.numel() // 2

        def gate(z):
            i = shift_round(z, -(a.frac_bits - a.lut_frac_bits)).clamp(-half, half - 1) + half
            return lut[i.long()]

        x = self._summed(p, values).double()
        if "c" in a.gates:
            s, m = x.sum((3, 4)), x.amax((3, 4))                               # [T, B, C]
            ha = shift_round(s @ t("ca_w1_avg").T, a.ca_shift1_avg).clamp(min=0)
            hm = shift_round(m @ t("ca_w1_max").T, a.ca_shift1_max).clamp(min=0)
            w2 = t("ca_w2").T
            z = shift_round(ha @ w2, a.ca_shift2) + shift_round(hm @ w2, a.ca_shift2) + t("ca_bias")
            x = shift_round(x * gate(z)[..., None, None], -a.gate_bits)
        if "s" in a.gates:
            maps = torch.stack([x.sum(2), x.amax(2)], 2)                      # [T, B, 2, H, W]
            flat, lead = _fold(maps)
            w = t("sa_weight")
            conv = F.conv2d(flat, w, None, 1, w.shape[-1] // 2).unflatten(0, lead)
            z = shift_round(conv, a.sa_shift) + t("sa_bias")
            x = shift_round(x * gate(z), -a.gate_bits)
        return x.clamp(min=0)

    def _gate(self, p, values, x, T):
        a = p.attrs
        return apply_gate(self._summed(p, values), a.ratio, a.seed, a.gate_id)

    #: process kind -> its kernel (tests/hw_sim/test_kernel_tables.py: exactly the format's kinds)
    KERNELS = {"input": _input, "synapse": _synapse, "neuron": _neuron, "sum": _sum, "dsmm": _dsmm, "prodmm": _dsmm,
               "sumpool": _sumpool, "maxpool": _maxpool, "flatten": _flatten, "attngate": _attngate, "gate": _gate}

    # -- the whole graph ------------------------------------------------------------------------

    @torch.no_grad()
    def run(self, x: torch.Tensor, keep: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Integer outputs ``[T, B, K]`` of the readout and, with ``keep``, of every process."""
        T = self.T
        if x.dim() == len(self.pg.input_shape) + 1:
            x = x.unsqueeze(0)  # static: one step, broadcast over T where needed
        elif x.shape[0] != T:
            T = x.shape[0]
        values: dict[str, torch.Tensor] = {}
        self.saturated, self.saturation_peak = {}, {}
        # without ``keep``, a value is dropped after its last reader: memory is the live set, not the network
        drop = {} if keep else last_reads(((p.name, list(p.sources) + list(p.operands)) for p in self.pg),
                                          [self.pg.output])
        for i, p in enumerate(self.pg):
            values[p.name] = self.KERNELS[p.kind](self, p, values, x, T)
            for name in drop.get(i, ()):
                del values[name]
        logits = values[self.pg.output]
        logits = logits.expand(T, *logits.shape[1:])
        return logits, (values if keep else {})

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step real-valued logits ``[T, B, K]`` (float32)."""
        logits, _ = self.run(x)
        return (logits * self.readout).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]``: the mean over T (the integer sum over T, scaled)."""
        logits, _ = self.run(x)
        return (logits.sum(0) * self.readout / logits.shape[0]).float()
