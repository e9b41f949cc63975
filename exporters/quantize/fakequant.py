"""The fake-quant model: a torch module computing exactly the chip's integer arithmetic.

It runs a :class:`~hw_sim.processes.ProcessGraph` with float64 tensors that hold
integers (exact up to 2**53, far above the 24-bit state), following the per-kind
semantics stated in ``hw_sim/processes.py``. It is the reference the simulator
is checked against spike for spike, and the model whose accuracy the export reports.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hw_sim.processes import DECAY_UNITY, SSA_FORMS, ProcessGraph
from hw_sim.arith import shift_round
from sresformer.spike_gate import apply_gate


def decay(x: torch.Tensor, d: int) -> torch.Tensor:
    """Loihi's decay ``sign(x) * ((|x| * (4096 - d)) >> 12)``: truncation toward zero."""
    if d == 0:
        return x
    if d == DECAY_UNITY:
        return torch.zeros_like(x)
    return torch.sign(x) * torch.floor(x.abs() * (DECAY_UNITY - d) / DECAY_UNITY)


def saturate(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Clip to the signed ``bits``-bit range."""
    return x.clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _fold(x):
    return x.flatten(0, 1), x.shape[:2]


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

    # -- one process on whole sequences [T, B, ...] (static ones on [1, B, ...]) ----------------

    def _input(self, p, x):
        q = 2 ** (p.attrs["bits"] - 1) - 1
        return torch.round(x.double() / 2.0 ** p.exponent).clamp(-q, q)

    def _synapse(self, p, x):
        w = torch.from_numpy(p.params["weight"]).double()
        flat, lead = _fold(x)
        if p.attrs["op"] == "conv":
            acc = F.conv2d(flat, w, None, p.attrs["stride"], p.attrs["padding"], p.attrs["dilation"], p.attrs["groups"])
            bias = torch.from_numpy(p.params["bias"]).double().view(1, -1, 1, 1)
        else:
            acc = flat @ w.T
            bias = torch.from_numpy(p.params["bias"]).double()
        return (shift_round(acc, p.attrs["shift"]) + bias).unflatten(0, lead)

    def _neuron(self, p, x):
        vth = torch.from_numpy(p.params["vth"]).double()
        vth = vth.reshape(p.out_shape) if vth.numel() > 1 else vth
        bits, du, dv = p.attrs["state_bits"], p.attrs["du"], p.attrs["dv"]
        u = torch.zeros_like(x[0])
        v = torch.zeros_like(x[0])
        out = torch.empty_like(x)
        for t in range(x.shape[0]):
            u = decay(u, du) + x[t]
            v = saturate(decay(v, dv) + u, bits)
            s = v >= vth
            out[t] = s
            v = v.masked_fill(s, 0.0)
        return out

    def _sum(self, p, x):
        return x

    def _dsmm(self, p, values):
        y, s = values[p.operands[0]], values[p.operands[1]]
        T = max(y.shape[0], s.shape[0])
        y, s = y.expand(T, *y.shape[1:]), s.expand(T, *s.shape[1:])
        heads = p.attrs["heads"]
        if p.attrs["form"] in SSA_FORMS:
            return self._ssa(p, y, s, heads)
        B = y.shape[1]
        d = y.shape[2] // (2 * heads)
        y = y.reshape(T, B, heads, 2 * d, -1)
        H, W = s.shape[-2:]
        if p.attrs["form"] == "y1T@s":
            out = torch.matmul(y[:, :, :, :d].transpose(-1, -2), s.reshape(T, B, heads, d, -1))
        else:
            out = torch.matmul(y[:, :, :, d:], s.reshape(T, B, heads, y.shape[-1], -1))
        return out.reshape(T, B, -1, H, W)

    @staticmethod
    def _ssa(p, y, s, heads):
        """Spikformer SSA form: per head ``L @ R`` of ``[heads, C/heads, prod(rest)]`` views (processes.py)."""
        lo, lt, ro, rt = SSA_FORMS[p.attrs["form"]]
        T, B = y.shape[:2]
        ops = {"dyn": y, "spk": s}

        def view(name, transpose):
            v = ops[name].reshape(T, B, heads, ops[name].shape[2] // heads, -1)
            return v.transpose(-1, -2) if transpose else v

        return torch.matmul(view(lo, lt), view(ro, rt)).reshape(T, B, *p.out_shape)

    def _sumpool(self, p, x):
        flat, lead = _fold(x)
        out = F.avg_pool2d(flat, p.attrs["kernel"], p.attrs["stride"], p.attrs["padding"], divisor_override=1)
        return out.unflatten(0, lead)

    def _maxpool(self, p, x):
        flat, lead = _fold(x)
        return F.max_pool2d(flat, p.attrs["kernel"], p.attrs["stride"], p.attrs["padding"]).unflatten(0, lead)

    def _flatten(self, p, x):
        return x.reshape(*x.shape[:2], *p.out_shape)

    def _attngate(self, p, x):
        """MA gates per step (``hw_sim/attngate.py``), on ``[T, B, C, H, W]`` in float64."""
        t = lambda k: torch.from_numpy(p.params[k]).double()  # noqa: E731
        a = p.attrs
        lut = t("lut")
        half = lut.numel() // 2

        def gate(z):
            i = shift_round(z, -(a["frac_bits"] - a["lut_frac_bits"])).clamp(-half, half - 1) + half
            return lut[i.long()]

        x = x.double()
        if "c" in a["gates"]:
            s, m = x.sum((3, 4)), x.amax((3, 4))                               # [T, B, C]
            ha = shift_round(s @ t("ca_w1_avg").T, a["ca_shift1_avg"]).clamp(min=0)
            hm = shift_round(m @ t("ca_w1_max").T, a["ca_shift1_max"]).clamp(min=0)
            w2 = t("ca_w2").T
            z = shift_round(ha @ w2, a["ca_shift2"]) + shift_round(hm @ w2, a["ca_shift2"]) + t("ca_bias")
            x = shift_round(x * gate(z)[..., None, None], -a["gate_bits"])
        if "s" in a["gates"]:
            maps = torch.stack([x.sum(2), x.amax(2)], 2)                      # [T, B, 2, H, W]
            flat, lead = _fold(maps)
            w = t("sa_weight")
            conv = F.conv2d(flat, w, None, 1, w.shape[-1] // 2).unflatten(0, lead)
            z = shift_round(conv, a["sa_shift"]) + t("sa_bias")
            x = shift_round(x * gate(z), -a["gate_bits"])
        return x.clamp(min=0)

    def _gate(self, p, x):
        a = p.attrs
        return apply_gate(x, a["ratio"], a["seed"], a["gate_id"])

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
        for p in self.pg:
            if p.kind == "input":
                out = self._input(p, x)
            elif p.kind == "dsmm":
                out = self._dsmm(p, values)
            else:
                ins = [values[s] for s in p.sources]
                steps = max(i.shape[0] for i in ins)
                inp = ins[0].expand(steps, *ins[0].shape[1:])
                for other in ins[1:]:
                    inp = inp + other
                if p.kind == "neuron" and inp.shape[0] == 1:
                    inp = inp.expand(T, *inp.shape[1:])
                out = getattr(self, f"_{p.kind}")(p, inp)
            values[p.name] = out
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
