"""The CUBA neuron's time loop in the executor's integer arithmetic (:mod:`hw_sim.executor`).

The chip's decay (:func:`decay_`) and the step-by-step update of a neuron kind's current, voltage and
spikes over ``T`` steps (:func:`cuba_steps`), as ``hw_sim/processes.py`` states them: the one stateful
kernel of the executor, which runs every other kind over all steps at once.
"""

from __future__ import annotations

import torch

from hw_sim.processes import sat_limit


def power_of_two(n: int) -> bool:
    """Whether ``n`` is a positive power of two."""
    return n > 0 and n & (n - 1) == 0


def decay_(x: torch.Tensor, d: int, unity: int) -> torch.Tensor:
    """The chip's ``sign(x) * ((|x| * (unity - d)) >> decay_bits)`` in place on ``x`` (a neuron's own
    state), ``unity = 2**decay_bits``: multiply by the dyadic ``(unity-d)/unity``, truncate toward zero."""
    if d == 0:
        return x
    if d == unity:
        return x.zero_()
    keep = unity - d
    if power_of_two(keep):   # one kernel: an exact division by a power of two, truncated
        return torch.div(x, unity // keep, rounding_mode="trunc", out=x)
    return x.mul_(keep / unity).trunc_()


def cuba_steps(p, plan, x, saturate_, probe=None):
    """CUBA-LIF over ``x [T, B, ...]``, step by step from ``u = 0``, ``v = v0``:
    ``u = sat(decay(u, du) + in); v = sat(decay(v, dv) + u + bias); s = v >= vth``; then ``v = 0`` or
    ``v - vth`` where ``s`` (``reset``).

    ``plan`` is the executor's setup of ``p`` (its tensors and dtypes); ``saturate_(p, limit, x, copy=False)``
    clamps ``x`` to ``[-limit, limit]`` (in place unless ``copy``) and counts what it changed; ``probe(p, t,
    u, v)``, when given, sees the state of every step.

    Returns the spikes and the active compartments (non-zero input, remaining current or
    voltage: the rest update idly), both ``[T, B, ...]``.
    """
    bits, du, dv, unity = p.attrs.state_bits, p.attrs.du, p.attrs.dv, p.attrs.unity
    vth, u_clamps, v_clamps = plan.tensors["vth"], plan.tensors["u_clamps"], plan.tensors["v_clamps"]
    bias, v0 = plan.tensors["bias"], plan.tensors["v0"]
    subtract = p.attrs.reset == "subtract"
    lim = sat_limit(bits)
    T = x.shape[0]
    fired = torch.empty(x.shape, dtype=torch.bool)
    active = x != 0
    u = None
    v = None if v0 is None else v0.to(plan.compute).expand(x.shape[1:]).clone()
    for t in range(T):
        xt, act = x[t], active[t]
        if du == unity:         # the current does not outlive a step (xt is the input's: clamp a copy)
            u = saturate_(p, lim, xt, copy=True) if u_clamps else xt
        else:
            if u is None:       # it starts at 0; later steps decay it in place
                u = xt.clone()
            else:
                act |= decay_(u, du, unity) != 0
                u.add_(xt)
            if u_clamps:
                saturate_(p, lim, u)
        if v is None:
            v = u.clone()
        else:
            act |= v != 0
            v = decay_(v, dv, unity).add_(u)
        if bias is not None:
            act |= bias != 0
            v.add_(bias)
        if v_clamps:
            saturate_(p, lim, v)
        if probe is not None:
            probe(p, t, u.clone(), v.clone())
        s = torch.ge(v, vth, out=fired[t])
        if subtract:
            v = torch.where(s, v - vth, v)
        else:
            v.masked_fill_(s, 0.0)
    return fired.to(plan.dtype), active
