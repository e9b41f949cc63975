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

Energy per inference, dynamic (picojoules): ``ac_pj*AC + mac_pj*MAC + neuron_active_pj*active +
neuron_idle_pj*idle + spike_out_pj*spikes + message_out_pj*messages + spike_in_tile_pj*in-tile
deliveries + hop_ew_pj*EW hops + hop_ns_pj*NS hops + operand_write_pj*operand writes``, embedded ACs
and MACs included; the idle updates are those of every chip step the pipelined latency counts
(T + depth: :func:`window_idle`). Static (joules): ``static_w_per_chip * chips * s``, ``s`` the wall
time one inference holds the chips when frames stream through the pipeline, ``1 / throughput``
(:func:`streaming`). ``paper-45nm`` prices only AC and MAC, so there it is ``0.9*AC + 4.6*MAC``.
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


def window_idle(compartments: float, depth: int) -> float:
    """Idle compartment updates per inference outside the executor's T steps: in each of the ``depth``
    extra chip steps of the pipelined schedule every compartment (``compartments`` in all) is updated
    with no data, as :func:`pipelined_busy` times them."""
    return float(compartments) * depth


def streaming(latency_pipelined_s: float, T: int, depth: int) -> dict:
    """Mean chip step time (s), and inferences per second when frames stream through the pipeline: a
    new frame enters every ``T`` chip steps while earlier ones are still in flight (what Intel's
    PilotNet measurement, frames per second, counts)."""
    step = latency_pipelined_s / (T + depth) if T + depth else 0.0
    return {"step_time_s": step, "throughput_ips": 1.0 / (T * step) if step > 0 else 0.0}


def energy_terms(totals: dict[str, float], profile: EnergyProfile, chips: int = 1,
                 seconds_per_inference: float = 0.0) -> dict[str, float]:
    """Energy in joules of each term per inference from per-inference totals (keys of ``CORE_KEYS``);
    ``static``: ``static_w_per_chip * chips * seconds_per_inference``."""
    terms = {
        "ac": totals["ac"] * profile.ac_pj,
        "mac": totals["mac"] * profile.mac_pj,
        "neuron_active": totals["active"] * profile.neuron_active_pj,
        "neuron_idle": totals["idle"] * profile.neuron_idle_pj,
        "spike_out": totals.get("spikes", 0.0) * profile.spike_out_pj,
        "message_out": totals.get("msgs", 0.0) * profile.message_out_pj,
        "spike_in_tile": totals["in_tile"] * profile.spike_in_tile_pj,
        "hop_ew": totals["hops_ew"] * profile.hop_ew_pj,
        "hop_ns": totals["hops_ns"] * profile.hop_ns_pj,
        "operand_write": totals.get("operand_writes", 0.0) * profile.operand_write_pj,
    }
    out = {k: v * PJ for k, v in terms.items()}
    out["static"] = profile.static_w_per_chip * chips * seconds_per_inference
    return out


def energy_j(totals: dict[str, float], profile: EnergyProfile, chips: int = 1,
             seconds_per_inference: float = 0.0) -> float:
    """Total energy per inference in joules (dynamic + static)."""
    return float(sum(energy_terms(totals, profile, chips, seconds_per_inference).values()))
