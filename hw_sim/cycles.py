"""Time and energy from event counts: the cycle model of a Loihi-style mesh of neuro cores.

Time (nanoseconds). Each core works through its events serially in a step:

    busy[t, core] = (AC + MAC) * synop_ns + active * neuron_update_active_ns
                    + idle * neuron_update_idle_ns + messages sent * spike_in_tile_ns
                    + east-west hops * hop_ew_ns + north-south hops * hop_ns_ns
                    + operand writes * operand_write_ns

(operand writes: the dynamic-operand entries a ``dsmm`` core rewrites every step, only on a chip
with ``dynamic_operand_memory``; a ``prodmm``'s product compartments are one more compartment
group, so they add one step of pipeline delay like every group)

and a step ends when the slowest core is done, plus the barrier synchronisation
(``barrier_ns``): ``step[t] = max_core busy[t, core] + barrier_ns``. Two latency figures:

- ``zero_delay``: the executor's schedule, every layer inside one step: ``sum_t step[t]``
  over the T steps;
- ``pipelined``: the chip's schedule: a message crosses the step barrier before it is
  delivered, so every compartment group on a path adds one step of delay (graded
  integrators are compartments too). A core whose group has delay ``d`` works on data step
  ``t`` in chip step ``t + d``; an inference takes ``T + depth`` chip steps (``depth`` = the
  largest delay), and in chip steps outside its window a core still updates its
  compartments idly.

The embedded processor's work (the stem on a static image, once per inference) is reported
as counts; the profiles give it no timing, so it is not in these latencies.

Energy (picojoules, per inference): ``ac_pj*AC + mac_pj*MAC + neuron_active_pj*active +
neuron_idle_pj*idle + spike_in_tile_pj*in-tile deliveries + hop_ew_pj*EW hops +
hop_ns_pj*NS hops + operand_write_pj*operand writes``, embedded ACs and MACs included. ``paper-45nm`` prices
only AC and MAC,
so there it is ``0.9*AC + 4.6*MAC``.
"""

from __future__ import annotations

import numpy as np
import torch

from .chips import EnergyProfile

PJ = 1e-12
NS = 1e-9


def busy_ns(core: dict[str, torch.Tensor], profile: EnergyProfile) -> torch.Tensor:
    """Busy time of every core in every step, ``[T, B, cores]`` in ns."""
    return ((core["ac"] + core["mac"]) * profile.synop_ns
            + core["active"] * profile.neuron_update_active_ns + core["idle"] * profile.neuron_update_idle_ns
            + core["msgs"] * profile.spike_in_tile_ns
            + core["hops_ew"] * profile.hop_ew_ns + core["hops_ns"] * profile.hop_ns_ns
            + (core["operand_writes"] * profile.operand_write_ns if "operand_writes" in core else 0.0))


def pipelined_busy(busy: torch.Tensor, delays: np.ndarray, idle_ns: torch.Tensor) -> torch.Tensor:
    """Busy time per chip step of the pipelined schedule, ``[T + depth, B, cores]``.

    ``delays[core]``: steps of delay of the core's group; ``idle_ns[core]``: the time of a step
    with no data (every compartment updated idly).
    """
    T, B, K = busy.shape
    depth = int(delays.max(initial=0))
    out = idle_ns.to(busy.dtype).view(1, 1, K).expand(T + depth, B, K).clone()
    for d in np.unique(delays):
        cols = torch.from_numpy(np.nonzero(delays == d)[0])
        out[int(d):int(d) + T][:, :, cols] = busy[:, :, cols]
    return out


def timing(core: dict[str, torch.Tensor], profile: EnergyProfile, delays: np.ndarray,
           compartments: torch.Tensor) -> dict:
    """Per-sample latencies (s) and per-core busy totals of one batch.

    Returns ``latency_s`` / ``latency_pipelined_s`` ``[B]``, ``step_s`` ``[T, B]``,
    ``busy_ns`` ``[cores]`` and ``step_total_ns`` (both summed over steps and samples), and
    ``slowest`` ``[cores]``: how many (step, sample) pairs each core was the slowest in.
    """
    busy = busy_ns(core, profile)
    step = busy.max(-1).values + profile.barrier_ns
    idle = compartments.double() * profile.neuron_update_idle_ns
    pipe = pipelined_busy(busy, delays, idle)
    pipe_step = pipe.max(-1).values + profile.barrier_ns
    slowest = torch.bincount(busy.argmax(-1).flatten(), minlength=busy.shape[-1])
    return {"latency_s": step.sum(0) * NS, "latency_pipelined_s": pipe_step.sum(0) * NS, "step_s": step * NS,
            "busy_ns": busy.sum((0, 1)), "step_total_ns": float(step.sum()), "slowest": slowest}


def energy_terms(totals: dict[str, float], profile: EnergyProfile) -> dict[str, float]:
    """Energy in joules of each event class from per-inference totals (keys of ``CORE_KEYS``)."""
    terms = {
        "ac": totals["ac"] * profile.ac_pj,
        "mac": totals["mac"] * profile.mac_pj,
        "neuron_active": totals["active"] * profile.neuron_active_pj,
        "neuron_idle": totals["idle"] * profile.neuron_idle_pj,
        "spike_in_tile": totals["in_tile"] * profile.spike_in_tile_pj,
        "hop_ew": totals["hops_ew"] * profile.hop_ew_pj,
        "hop_ns": totals["hops_ns"] * profile.hop_ns_pj,
        "operand_write": totals.get("operand_writes", 0.0) * profile.operand_write_pj,
    }
    return {k: v * PJ for k, v in terms.items()}


def energy_j(totals: dict[str, float], profile: EnergyProfile) -> float:
    """Total energy per inference in joules."""
    return float(sum(energy_terms(totals, profile).values()))
