"""The integer event-driven executor: runs a ``.loihi`` process graph step by step on the CPU.

A second, independent implementation of the per-kind semantics stated in
``hw_sim/processes.py`` (the fake-quant torch model is the first; the tests hold
the two equal bit for bit). Inside a time step every process runs in graph order (zero
delay inside a step; the latency model in :mod:`hw_sim.cycles` accounts for the chip's
one-step-per-layer pipelining). The graph is feed-forward and only neurons carry state
from one step to the next, so the executor runs it process by process over all ``T``
steps at once: a synapse, pool or dual-spike matmul sees the ``T x B`` inputs as one batch
(one kernel call instead of ``T``), and a neuron loops over ``t`` on its own state. The
values are those of the step-by-step order, bit for bit; only the order of work differs.

Exact integers in floating point. torch has no integer convolution on the CPU, so values
are integers held in float tensors. float32 represents every integer of magnitude below
``2**24`` exactly (24-bit significand, IEEE 754 binary32); any partial sum of terms whose
absolute values add up to less than ``2**24`` is then exact in any summation order. At
setup every value gets a static bound on its magnitude (interval arithmetic over the
graph: ``sum |mantissa|`` over the fan-in times the input's bound for a synapse, and so
on); a process computes in float32 where its worst case stays below ``2**24`` and in
float64 (exact below ``2**53``) elsewhere. The bounds are worst cases, not measurements,
so no input can break exactness. A value that saturates (a neuron's ``u`` and ``v`` at
``state_bits``, a graded kind's output at ``out_bits``) is bounded by its limit after the
clamp, while the value before the clamp keeps its own bound and dtype; a clamp its bound
proves idle is skipped. Every clamp counts the values it changed (:attr:`RunResult.saturated`).

Silent inputs are skipped as event-driven hardware would: a synapse whose input holds no
non-zero value outputs its bias without computing, one with few live input channels
(``LIVE_FRACTION``) convolves only those, a dual-spike matmul without spikes outputs zeros;
the dropped terms are exact zeros, so the results are the same bit for bit.

Static processes (the input and the stem of a static image) run once per inference (one
step, ``[1, B, ...]``); their values then feed every step, as on the chip where the
embedded processor computes them once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from hw_sim.arith import shift_round
from hw_sim.bounds import dsmm_terms, gate_accumulator_bound, neuron_bounds, saturated, synapse_bounds
from hw_sim.liveness import last_reads
from hw_sim.processes import GRADED_KINDS, NEURON_OPTIONAL, Process, ProcessGraph, neuron_param
from hw_sim.products import PRODUCT_FORMS, form_dims
from sresformer.spike_gate import keep_mask

from .cuba import cuba_steps, decay_, power_of_two
from .ratenorm import rate_steps

F32_EXACT = 2 ** 24   # IEEE 754 binary32: 24-bit significand, every integer below this is exact
F64_EXACT = 2 ** 53   # IEEE 754 binary64: 53-bit significand
#: a synapse computes on its live input channels only when fewer than this fraction are live (the gather
#: of weights and inputs costs less than the skipped work well below it; dense kernels win above it)
LIVE_FRACTION = 0.5

#: ``hook(process, out, inp, active)``: called once per process with its values of every step,
#: ``[S, B, ...]`` (``S = T``; ``S = 1`` for a static process, which runs once). ``inp`` is the
#: summed input (a dual-spike matmul: its spike operand); ``active`` the compartments a neuron
#: updated with non-zero input or state.
Hook = Callable[[Process, torch.Tensor, torch.Tensor | None, torch.Tensor | None], None]


def exact_dtype(bound: float) -> torch.dtype:
    """float32 when every integer up to ``bound`` (inclusive) is exact in it, else float64."""
    if bound >= F64_EXACT:
        raise OverflowError(f"a value can reach {bound:.3g}, beyond exact float64 integers (2**53)")
    return torch.float32 if bound < F32_EXACT else torch.float64


@dataclass
class Plan:
    """Per-process setup: worst-case magnitudes and the dtypes that keep the arithmetic exact."""

    bound: float                        # max |output value|
    dtype: torch.dtype                  # dtype the output is held in
    compute: torch.dtype | None = None  # dtype of the accumulation (synapse, dsmm) or neuron state
    tensors: dict = field(default_factory=dict)
    limit: int | None = None            # a graded output's saturation limit; None where it cannot act


@dataclass
class RunResult:
    """Integer logits ``[T, B, K]`` (int64), when kept every process's outputs ``[T or 1, B, ...]``, and
    per process the number of values its saturations changed, summed over steps and samples (a
    neuron: its ``u`` and ``v`` clamps; only processes with a non-zero count)."""

    logits: torch.Tensor
    values: dict[str, torch.Tensor]
    saturated: dict[str, int] = field(default_factory=dict)


def _stateless(step):
    """The kernel of a kind without state that reads its summed input: ``step(self, p, plan, x)`` on one
    batch, run on all ``S x B`` steps and samples at once (``[S, B, ...]`` folded into one batch)."""
    def run(self, p, plan, vals, x, steps):
        inp = self._summed(p, vals, plan.dtype, steps)
        out = step(self, p, plan, inp.flatten(0, 1))
        return out.view(*inp.shape[:2], *out.shape[1:]), inp, None
    return run


class Executor:
    """Runs a :class:`ProcessGraph`; all setup (bounds, dtypes, weight tensors) happens here, once."""

    def __init__(self, pg: ProcessGraph):
        self.pg = pg
        self.plans: dict[str, Plan] = {}
        self._saturated: dict[str, int] = {}
        #: ``probe(process, t, u, v)``, when set: every neuron's state at every step, ``v`` before its reset
        self.probe: Callable | None = None
        for p in pg:
            plan = self.PLANS[p.kind](self, p)   # dtypes hold the value before any clamp exactly
            if p.kind in GRADED_KINDS:          # then its bound is the saturated one
                plan.bound, plan.limit = saturated(plan.bound, p.attrs.out_bits)
            self.plans[p.name] = plan

    # -- setup: bounds and dtypes -----------------------------------------------------------

    def _in_bound(self, p: Process) -> float:
        return float(sum(self.plans[s].bound for s in p.sources))

    def _plan_input(self, p):
        q = 2 ** (p.attrs.bits - 1) - 1
        return Plan(q, exact_dtype(q))

    def _plan_synapse(self, p):
        w = np.asarray(p.params["weight"], dtype=np.int64)
        bias = np.asarray(p.params["bias"], dtype=np.int64)
        in_b = self._in_bound(p)
        acc_b, out_b, half = synapse_bounds(w, bias, p.attrs.shift, in_b)
        compute = exact_dtype(max(acc_b, in_b if acc_b else 0))
        post = exact_dtype(max(acc_b + half, out_b))
        plan = Plan(out_b, post, compute)
        plan.tensors = {"weight": torch.from_numpy(w).to(compute),
                        "spikes_in": self.pg.spikes_only(p.sources),
                        "bias": torch.from_numpy(bias).to(post).view(-1, *([1] * (len(p.out_shape) - 1)))}
        return plan

    def _plan_neuron(self, p):
        a = p.attrs
        bias = neuron_param(p, "bias")
        # a compartment bias enters every step as input does
        in_b = self._in_bound(p) * 2 ** a.in_shift + (0.0 if bias is None else float(np.max(np.abs(bias))))
        bits, du, dv, unity = a.state_bits, a.du, a.dv, a.unity
        nb = neuron_bounds(du, dv, unity, bits, self.pg.T, in_b)
        # a decay multiplies by (unity-d)/unity: exact in float32 only when unity-d is a power of two
        # (a pure exponent change); otherwise |x| * (unity-d) needs up to bits+decay_bits significand bits
        dyadic = all(d in (0, unity) or power_of_two(unity - d) for d in (du, dv))
        state = exact_dtype(nb.pre) if dyadic else torch.float64
        t = {k: None if (v := neuron_param(p, k)) is None else torch.from_numpy(v).to(state)
             for k in ("vth", *NEURON_OPTIONAL)}
        # a clamp the bounds prove idle is skipped (hw_sim.bounds.neuron_bounds); an initial membrane
        # can sit outside the leak's geometric bound, so then the v clamp stays
        v_clamps = nb.v_clamps or t["v0"] is not None
        return Plan(1.0, torch.float32, state, {**t, "u_clamps": nb.u_clamps, "v_clamps": v_clamps})

    def _plan_sum(self, p):
        b = self._in_bound(p) * (1 if p.attrs.running == "none" else self.pg.T)   # a counter sums T steps
        return Plan(b, exact_dtype(b))

    def _plan_dsmm(self, p):
        y, s = (self.pg.processes[o] for o in p.operands)
        # worst case: the contraction length x both operands' bounds
        b = dsmm_terms(p, y, s) * self.plans[y.name].bound * self.plans[s.name].bound
        dims = form_dims(p.attrs.form, p.attrs.heads, y.out_shape, s.out_shape)
        return Plan(b, exact_dtype(b), exact_dtype(b),
                    {"einsum": _form_einsum(p.attrs.form), "dyn_rows": dims.dyn_rows})

    def _plan_sumpool(self, p):
        kh, kw = p.attrs.kernel
        b = kh * kw * self._in_bound(p)
        return Plan(b, exact_dtype(b))

    def _plan_maxpool(self, p):
        b = self._in_bound(p)
        return Plan(b, exact_dtype(b))


    def _plan_attngate(self, p):
        # every gate is <= 2**gate_bits, so |out| <= |in|; the internals run in int64 (exact, no
        # float rounding): |sum| <= H W bound, |acc| <= 127 C H W bound, far below 2**63
        b = self._in_bound(p)
        if gate_accumulator_bound(p.out_shape, b) >= 2 ** 62:
            raise OverflowError(f"{p.name}: attention-gate accumulators could exceed int64")
        tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.int64)) for k, v in p.params.items()}
        return Plan(b, exact_dtype(b), torch.int64, tensors)

    def _plan_gate(self, p):
        return Plan(1.0, torch.float32, None, {"keep": {}})   # keep masks [T, 1, ...] by T, built on first use

    def _step_gate(self, p, plan, x):
        """Spikes ``[T, B, ...]`` whose gate hash at their step passes the threshold (every sample the same gate)."""
        a, T, masks = p.attrs, x.shape[0], plan.tensors["keep"]
        if T not in masks:
            masks[T] = keep_mask(a.ratio, a.seed, a.gate_id, T, p.out_shape).unsqueeze(1).to(plan.dtype)
        return x.to(plan.dtype) * masks[T]

    # -- one process at one step ---------------------------------------------------------------

    def _saturate_(self, p, limit, x, copy: bool = False):
        """``x`` clipped to ``[-limit, limit]`` (``None``: the bound proved it idle), in place unless ``copy``
        (``x`` is another value's tensor: a clipped copy then), counting the values the clamp changes
        (their magnitude exceeds the limit) against ``p``."""
        if limit is None or not x.numel():
            return x
        lo, hi = torch.aminmax(x)   # one pass without a temporary: the common case (in range) stops here
        if lo >= -limit and hi <= limit:
            return x
        self._saturated[p.name] = self._saturated.get(p.name, 0) + int(torch.count_nonzero(x.abs() > limit))
        return x.clamp(-limit, limit) if copy else x.clamp_(-limit, limit)

    def _summed(self, p, vals, dtype, steps: int):
        """The sum of ``p``'s sources over ``steps`` steps (a static source's one step feeds them all)."""
        x = vals[p.sources[0]].to(dtype)
        for s in p.sources[1:]:
            x = x + vals[s].to(dtype)
        return x.expand(steps, *x.shape[1:]) if x.shape[0] != steps else x

    def _step_input(self, p, plan, x):
        """8-bit (``bits``) input values ``[S, B, ...]`` of the pixels or frames ``x [S, B, ...]``."""
        q = 2 ** (p.attrs.bits - 1) - 1
        # same rounding as the spec: round half to even of x / 2**exponent, in float64
        return torch.round(x.double() / 2.0 ** p.exponent).clamp_(-q, q).to(plan.dtype)

    def _step_synapse(self, p, plan, x):
        """Outputs ``[S, B, ...]``: the integer accumulation of inputs ``x [S, B, ...]``, shifted, plus the bias."""
        S, B = x.shape[:2]
        w = plan.tensors["weight"]
        xin = x.flatten(0, 1).to(plan.compute)
        a = p.attrs
        conv = a.op == "conv"
        # event-driven skip of silent inputs: only the input channels (conv) or elements (dense) that
        # hold a non-zero value anywhere in the batch take part; dropped terms are exact zeros (spikes are
        # 0 / 1, so a channel is live when its sum is positive: a sum is much faster than a comparison)
        mag = xin if plan.tensors["spikes_in"] else xin.abs()
        live = (mag.sum((0, 2, 3)) if conv else mag.sum(0)) > 0
        n_live = int(live.sum())
        if n_live == 0:   # no input at all: acc = 0, shifted to 0 (either rounding), out = bias
            return plan.tensors["bias"].expand(S, B, *p.out_shape).to(plan.dtype, copy=True)
        if not conv or a.groups == 1:   # (a grouped conv's channels cannot be dropped independently)
            if n_live < LIVE_FRACTION * live.numel():
                idx = torch.nonzero(live).flatten()
                w = w.index_select(1, idx)
                xin = xin.index_select(1, idx) if conv else xin.flatten(1).index_select(1, idx)
        if conv:
            acc = F.conv2d(xin, w, None, a.stride, a.padding, a.dilation, a.groups)
        else:
            acc = xin.flatten(1) @ w.T
        acc = acc.to(plan.dtype)
        k = a.shift
        if k >= 0:
            acc = acc * float(2 ** k)
        else:  # round half up: floor((acc + 2**(-k-1)) / 2**-k); dividing by a power of two is exact
            acc = torch.floor((acc + float(2 ** (-k - 1))) * float(2.0 ** k))
        return (acc + plan.tensors["bias"]).view(S, B, *p.out_shape)

    def _step_dsmm(self, p, plan, vals):
        """``[S, B, ...]``: the dual-spike product of the graded and the spike operand at every step."""
        s = vals[p.operands[1]]
        y = vals[p.operands[0]]
        S = max(s.shape[0], y.shape[0])
        if not bool((s != 0).any()):   # no spikes: nothing is accumulated
            return torch.zeros(S, s.shape[1], *p.out_shape, dtype=plan.compute)
        y, s = (v.expand(S, *v.shape[1:]).flatten(0, 1) for v in (y, s))
        return self._matmul(p, plan, y, s).view(S, -1, *p.out_shape)

    def _matmul(self, p, plan, y, s):
        """The product of one batch of operands ``y``, ``s`` (``[N, ...]``): ``[N, ...]``."""
        y, s = y.to(plan.compute), s.to(plan.compute)
        eq, first_dyn = plan.tensors["einsum"]   # one einsum over [B, heads, rows, cols] views
        h, (r0, r1) = p.attrs.heads, plan.tensors["dyn_rows"]
        y, s = (v.reshape(v.shape[0], h, v.shape[1] // h, -1) for v in (y, s))
        y = y[:, :, r0:r1]   # the rows of the dynamic view the form uses (DSSA: one half)
        return torch.einsum(eq, *((y, s) if first_dyn else (s, y))).reshape(y.shape[0], *p.out_shape)

    def _step_attngate(self, p, plan, x):
        """MA gates on one step ``[B, C, H, W]`` in int64 (spec: ``hw_sim/attngate.py``)."""
        a, w = p.attrs, plan.tensors
        xi = x.to(torch.int64)
        if "c" in a.gates:
            s, m = xi.sum((2, 3)), xi.amax((2, 3))                                   # [B, C]
            ha = shift_round(torch.einsum("jc,bc->bj", w["ca_w1_avg"], s), a.ca_shift1_avg).clamp(min=0)
            hm = shift_round(torch.einsum("jc,bc->bj", w["ca_w1_max"], m), a.ca_shift1_max).clamp(min=0)
            z = (shift_round(torch.einsum("cj,bj->bc", w["ca_w2"], ha), a.ca_shift2)
                 + shift_round(torch.einsum("cj,bj->bc", w["ca_w2"], hm), a.ca_shift2) + w["ca_bias"])
            xi = shift_round(xi * _lut(w["lut"], z, a).unsqueeze(-1).unsqueeze(-1), -a.gate_bits)
        if "s" in a.gates:
            maps = torch.stack([xi.sum(1), xi.amax(1)], 1)                           # [B, 2, H, W]
            k = w["sa_weight"].shape[-1]
            r = k // 2
            H, W = maps.shape[-2:]
            padded = F.pad(maps, (r, r, r, r))
            acc = torch.zeros(maps.shape[0], H, W, dtype=torch.int64)
            for dy in range(k):          # the k x k window as k^2 shifted, weighted sums of the two maps
                for dx in range(k):
                    tap = w["sa_weight"][0, :, dy, dx].view(1, 2, 1, 1)
                    acc += (padded[:, :, dy:dy + H, dx:dx + W] * tap).sum(1)
            z = shift_round(acc, a.sa_shift) + w["sa_bias"]
            xi = shift_round(xi * _lut(w["lut"], z, a).unsqueeze(1), -a.gate_bits)
        return xi.clamp(min=0).to(plan.dtype)

    def _step_sumpool(self, p, plan, x):
        a = p.attrs
        return F.avg_pool2d(x, a.kernel, a.stride, a.padding, divisor_override=1)

    def _step_maxpool(self, p, plan, x):
        a = p.attrs
        return F.max_pool2d(x, a.kernel, a.stride, a.padding)

    # -- the kinds' kernels over all steps: ``(self, p, plan, vals, x, steps) -> (out, inp, active)`` ----
    # ``vals``: the values so far; ``x``: the host input [S, B, ...] (only the input reads it); ``inp``
    # the summed input the counters see (a dual-spike matmul: its spike operand); ``active`` a
    # neuron's updated compartments

    def _run_input(self, p, plan, vals, x, steps):
        return self._step_input(p, plan, x), None, None

    def _run_dsmm(self, p, plan, vals, x, steps):
        return self._step_dsmm(p, plan, vals), vals[p.operands[1]], None

    def _run_neuron(self, p, plan, vals, x, steps):
        inp = self._summed(p, vals, plan.compute, steps)
        if p.attrs.in_shift:   # exact: the bounds hold the shifted input
            inp = inp * 2 ** p.attrs.in_shift
        if p.attrs.reset == "rate":   # the rate-normalised IF: a programmable neuron, not CUBA
            out, active = rate_steps(inp, plan.tensors["vth"], plan.tensors["bias"])
            return out.to(plan.dtype), inp, active
        out, active = cuba_steps(p, plan, inp, self._saturate_, self.probe)
        return out, inp, active

    def _run_flatten(self, p, plan, vals, x, steps):
        src = vals[p.sources[0]]
        return src.reshape(*src.shape[:2], *p.out_shape), None, None

    def _run_gate(self, p, plan, vals, x, steps):
        return self._step_gate(p, plan, self._summed(p, vals, plan.dtype, steps)), None, None

    def _run_sum(self, p, plan, vals, x, steps):
        inp = self._summed(p, vals, plan.dtype, steps)
        if p.attrs.running == "none":
            return inp, inp, None
        count = inp.cumsum(0)   # exact: the plan's dtype holds T times the input's bound
        return (count if p.attrs.running == "inclusive" else count - inp), inp, None

    def _run_synapse(self, p, plan, vals, x, steps):
        inp = self._summed(p, vals, plan.compute, steps)
        return self._step_synapse(p, plan, inp), inp, None


    # -- the time loop ---------------------------------------------------------------------------

    @torch.no_grad()
    def run(self, x: torch.Tensor, hook: Hook | None = None, keep: bool = False) -> RunResult:
        """Run ``x``: a static batch ``[B, *input_shape]`` (repeated over ``T``) or frames ``[T, B, ...]``."""
        pg = self.pg
        static_input = x.dim() == len(pg.input_shape) + 1
        T = pg.T if static_input else x.shape[0]
        once = self._once(static_input)
        last_use = self._last_use()
        vals: dict[str, torch.Tensor] = {}
        kept: dict[str, torch.Tensor] = {}
        self._saturated = {}
        host_x = x.unsqueeze(0) if static_input else x
        for i, p in enumerate(pg):
            steps = 1 if p.name in once else T
            plan = self.plans[p.name]
            out, inp, active = self.RUNS[p.kind](self, p, plan, vals, host_x, steps)
            if plan.limit is not None:   # a graded output that can saturate (one that is an input's own: a copy)
                out = self._saturate_(p, plan.limit, out, copy=_reads_own(p, vals, out))
            vals[p.name] = out
            if hook is not None:
                hook(p, out, inp, active)
            if keep:
                kept[p.name] = out
            for done in last_use.get(i, ()):   # free values no later process reads
                vals.pop(done, None)
        logits = vals[pg.output]
        return RunResult(logits.expand(T, *logits.shape[1:]).to(torch.int64), kept, self._saturated)

    def _once(self, static_input: bool) -> set[str]:
        """Processes that compute the same value at every step: static input and what only it feeds."""
        once: set[str] = set()
        for p in self.pg:
            ins = list(p.sources) + list(p.operands)
            if (p.kind == "input" and static_input) or (
                    p.kind not in ("input", "neuron") and ins and all(i in once for i in ins)
                    and getattr(p.attrs, "running", "none") == "none"):
                once.add(p.name)
        return once

    def _last_use(self) -> dict[int, list[str]]:
        """Position in graph order -> values read for the last time there (the output is kept)."""
        return last_reads(((p.name, list(p.sources) + list(p.operands)) for p in self.pg), [self.pg.output])

    #: process kind -> setup (bounds, dtypes, tensors); tests/hw_sim/test_kernel_tables.py checks the kinds
    PLANS = {"input": _plan_input, "synapse": _plan_synapse, "neuron": _plan_neuron, "sum": _plan_sum,
             "dsmm": _plan_dsmm, "prodmm": _plan_dsmm, "sumpool": _plan_sumpool, "maxpool": _plan_maxpool,
             "flatten": _plan_maxpool,
             "attngate": _plan_attngate, "gate": _plan_gate}
    #: process kind -> its kernel over all steps
    RUNS = {"input": _run_input, "synapse": _run_synapse, "neuron": _run_neuron, "sum": _run_sum, "dsmm": _run_dsmm,
            "prodmm": _run_dsmm,
            "sumpool": _stateless(_step_sumpool), "maxpool": _stateless(_step_maxpool),
            "flatten": _run_flatten, "attngate": _stateless(_step_attngate), "gate": _run_gate}


def _reads_own(p: Process, vals: dict, out: torch.Tensor) -> bool:
    """True when ``out`` shares memory with a value ``p`` reads (a one-source sum passes its source on)."""
    ptr = out.untyped_storage().data_ptr()
    return any(vals[s].untyped_storage().data_ptr() == ptr for s in (*p.sources, *p.operands) if s in vals)


def _form_einsum(form: str) -> tuple[str, bool]:
    """The einsum of a product form over per-head views ``b h row col`` and whether ``dyn`` comes first."""
    f = PRODUCT_FORMS[form]
    left = "bhkr" if f.transpose_left else "bhrk"     # r: output row, k: contraction, c: output column
    right = "bhck" if f.transpose_right else "bhkc"
    return f"{left},{right}->bhrc", f.left == "dyn"


def _lut(lut: torch.Tensor, z: torch.Tensor, a) -> torch.Tensor:
    """Gate values: the sigmoid table at ``z`` (units 2**-frac_bits) rounded to its input step, clipped."""
    half = lut.numel() // 2
    idx = shift_round(z, a.lut_frac_bits - a.frac_bits).clamp(-half, half - 1) + half
    return lut[idx]


def real_logits(pg: ProcessGraph, int_logits: torch.Tensor) -> torch.Tensor:
    """Mean over T of the real-valued logits ``[B, K]`` (float64), as the float model reads out."""
    scale = torch.from_numpy(np.asarray(pg.readout_scale(), dtype=np.float64))
    return int_logits.double().sum(0) * scale / int_logits.shape[0]


__all__ = ["Executor", "RunResult", "decay_", "exact_dtype", "real_logits", "F32_EXACT"]
