"""Time and energy from event counts: the cycle model of a Loihi-style mesh of neuro cores.

Time (nanoseconds). A core's work in a step, by unit (:func:`units_ns`):

    input   = messages received * message_in_ns + synaptic ops * their encoding's synop_*_ns (synop_ns
              outside a static encoding) + operand writes * operand_write_ns
    soma    = active * neuron_update_active_ns + idle * neuron_update_idle_ns + spikes * spike_out_ns
    output  = messages sent * message_out_ns + deliveries inside the tile * spike_in_tile_ns
    network = east-west hops * hop_ew_ns + north-south hops * hop_ns_ns + chip links * chip_link_ns

(operand writes: the dynamic-operand entries a ``dsmm`` core rewrites every step, only on a chip with
``dynamic_operand_memory``). Two timing models (:func:`timing`):

- ``simple``: a core's units work one after another, its messages' hops charged to it; a step ends
  when the slowest core is done, plus the barrier of the tiles in use (:func:`barrier_ns`);
- ``detailed``: a core's units overlap (its step is its slowest unit: ``max(input, soma, output)``);
  its input unit works in the chip step the messages are sent, one step before its soma uses them;
  the mesh is a unit of its own: per chip step the busiest directed link's messages one after
  another (link contention) plus the longest path a message takes (:func:`network_ns`,
  :mod:`hw_sim.links`); a step is ``max(slowest core, mesh) + barrier``.

Two schedules: ``zero_delay`` (the executor's, every layer inside one step: ``sum_t step[t]`` over
the T steps, simple model) and ``pipelined`` (the chip's): a message crosses the step barrier before
it is delivered, so every compartment group on a path adds one step of delay; a core whose group has
delay ``d`` works on data step ``t`` in chip step ``t + d``; an inference takes ``T + depth`` chip
steps, and outside its window a core still updates its compartments idly.

The embedded processor's work (the stem on a static image, once per inference) is reported as
counts; the profiles give it no timing, so it is not in these latencies.

Energy per inference, dynamic (picojoules, :func:`energy_terms`): ``ac_pj * AC`` (binary-spike ops
outside a priced encoding) ``+ synop_*_pj * ops per encoding + mac_pj * MAC + neuron_active_pj * active
+ neuron_idle_pj * idle + spike_out_pj * spikes + message_out_pj * messages + message_in_pj * messages
+ spike_in_tile_pj * in-tile deliveries + hop_*_pj * hops + chip_link_pj * chip links +
operand_write_pj * operand writes``, embedded ACs and MACs included; the idle updates are those of
every chip step the pipelined latency counts (T + depth: :func:`window_idle`). Static (joules):
``static_w_per_chip * chips * s``, ``s`` the wall time one inference holds the chips when frames
stream through the pipeline, ``1 / throughput`` (:func:`streaming`). ``paper-45nm`` prices only AC
and MAC, so there it is ``0.9*AC + 4.6*MAC``.
"""

from __future__ import annotations

import numpy as np
import torch

from .chips import EnergyProfile

PJ = 1e-12
NS = 1e-9


ENCODINGS = ("conv", "dense", "sparse")   # the static-synapse encodings priced per op (hw_sim/resources.py)
TIMINGS = ("simple", "detailed")


def _enc(profile: EnergyProfile, unit: str, enc: str) -> float:
    """The per-op price (``unit`` "pj" or "ns") of encoding ``enc``; the profile's plain synop where it has none."""
    v = getattr(profile, f"synop_{enc}_{unit}")
    return v if v else (profile.ac_pj if unit == "pj" else profile.synop_ns)


def synop_ns(core: dict[str, torch.Tensor], profile: EnergyProfile) -> torch.Tensor:
    """Time of every core's synaptic ops (ns): per encoding where counted, ``synop_ns`` for the rest."""
    t = (core["ac"] + core["mac"]) * profile.synop_ns
    for enc in ENCODINGS:
        if f"syn_{enc}" in core:
            t = t + core[f"syn_{enc}"] * (_enc(profile, "ns", enc) - profile.synop_ns)
    return t


def units_ns(core: dict[str, torch.Tensor], profile: EnergyProfile) -> dict[str, torch.Tensor]:
    """Each core's work per step by unit, ``[T, B, cores]`` in ns: ``input`` (messages received, synaptic
    ops, operand writes), ``soma`` (compartment updates, spikes generated), ``output`` (messages sent,
    deliveries inside the tile) and ``network`` (the hops and chip links of the messages it sends)."""
    zero = torch.zeros_like(core["ac"])
    return {
        "input": (core.get("msgs_in", zero) * profile.message_in_ns + synop_ns(core, profile)
                  + core.get("operand_writes", zero) * profile.operand_write_ns),
        "soma": (core["active"] * profile.neuron_update_active_ns + core["idle"] * profile.neuron_update_idle_ns
                 + core["spikes"] * profile.spike_out_ns),
        "output": core["msgs"] * profile.message_out_ns + core["in_tile"] * profile.spike_in_tile_ns,
        "network": (core["hops_ew"] * profile.hop_ew_ns + core["hops_ns"] * profile.hop_ns_ns
                    + core.get("chip_links", zero) * profile.chip_link_ns),
    }


def busy_ns(core: dict[str, torch.Tensor], profile: EnergyProfile) -> torch.Tensor:
    """Busy time of every core in every step of the ``simple`` model, ``[T, B, cores]`` in ns: its units'
    work added serially."""
    return sum(units_ns(core, profile).values())


def barrier_ns(profile: EnergyProfile, tiles: int) -> float:
    """The time-step barrier (ns) of a system with ``tiles`` tiles in use: the entry of
    ``barrier_tiles_ns`` with the largest size not above ``tiles`` (a step function, as SANA-FE's sync
    table), ``barrier_ns`` below its smallest size or without a table."""
    out = profile.barrier_ns
    for size, ns in profile.barrier_tiles_ns:
        if size <= tiles:
            out = ns
    return out


def pipelined_busy(busy: torch.Tensor, delays: np.ndarray, idle_ns: torch.Tensor) -> torch.Tensor:
    """Busy time per chip step of the pipelined schedule, ``[T + depth, B, cores]``.

    ``delays[core]``: steps of delay of the core's group (its data step ``t`` runs in chip step
    ``t + delay``); ``idle_ns[core]``: the time of a step with no data (every compartment updated idly).
    The window is ``T + max(delays)`` chip steps long.
    """
    return shifted(busy, delays, int(delays.max(initial=0)), idle_ns)


def shifted(x: torch.Tensor, delays: np.ndarray, depth: int, fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """``x [T, B, K]`` placed in a window of ``T + depth`` chip steps, column ``k`` from chip step
    ``delays[k]`` on, ``fill`` (per column, or one value) elsewhere."""
    T, B, K = x.shape
    fill = torch.as_tensor(fill, dtype=x.dtype)
    out = fill.view(1, 1, -1).expand(T + depth, B, K).clone() if fill.dim() else torch.full(
        (T + depth, B, K), float(fill), dtype=x.dtype)
    for d in np.unique(delays):
        cols = torch.from_numpy(np.nonzero(delays == d)[0])
        out[int(d):int(d) + T][:, :, cols] = x[:, :, cols]
    return out


def network_ns(links: dict[int, tuple[torch.Tensor, torch.Tensor]], link_ns: torch.Tensor, T: int,
               depth: int, B: int) -> torch.Tensor:
    """The mesh's time per chip step ``[T + depth, B]`` in ns: the busiest link's messages one after
    another (link contention), plus the longest path a message takes in that step. ``links[d]``: the
    link loads ``[T, B, links]`` and longest paths ``[T, B]`` of the messages that senders with delay
    ``d`` send at their data steps (sent in chip step ``t + d``)."""
    load = torch.zeros(T + depth, B, len(link_ns), dtype=torch.float64)
    path = torch.zeros(T + depth, B, dtype=torch.float64)
    for d, (ld, pt) in links.items():
        load[d:d + ld.shape[0]] += ld
        path[d:d + pt.shape[0]] = torch.maximum(path[d:d + pt.shape[0]], pt)
    return ((load * link_ns).max(-1).values if len(link_ns) else path * 0) + path


def timing(core: dict[str, torch.Tensor], profile: EnergyProfile, delays: np.ndarray,
           compartments: torch.Tensor, mode: str = "simple", tiles: int = 1,
           links: dict | None = None, link_ns: torch.Tensor | None = None) -> dict:
    """Per-sample latencies (s) and per-core busy totals of one batch.

    ``simple``: every core's units work serially (:func:`busy_ns`); a chip step ends when the slowest
    core is done, plus the barrier (:func:`barrier_ns` of the ``tiles`` in use). ``detailed``: a core's
    units overlap (a step of a core is its slowest unit); its input unit works on the messages in the
    chip step they are sent (data step ``t`` of a core with delay ``d`` arrives in chip step
    ``t + d - 1``), and the mesh is a unit of its own with link contention (:func:`network_ns` over
    ``links``, ``link_ns`` per link); a hop is not charged to its sender.

    Returns ``latency_s`` (the executor's zero-delay schedule, simple model) / ``latency_pipelined_s``
    (the chip's schedule in ``mode``) ``[B]``, ``step_s`` ``[T, B]``, ``busy_ns`` ``[cores]`` and
    ``step_total_ns`` (both summed over chip steps and samples), and ``slowest`` ``[cores]``: how many
    (step, sample) pairs each core was the slowest in.
    """
    if mode not in TIMINGS:
        raise ValueError(f"unknown timing model {mode!r} (known: {', '.join(TIMINGS)})")
    bar = barrier_ns(profile, tiles)
    units = units_ns(core, profile)
    busy = sum(units.values())
    step = busy.max(-1).values + bar
    idle = compartments.double() * profile.neuron_update_idle_ns
    depth = int(delays.max(initial=0))
    if mode == "simple":
        pipe = shifted(busy, delays, depth, idle)
        pipe_step = pipe.max(-1).values + bar
    else:
        front = shifted(units["input"], np.maximum(delays - 1, 0), depth)
        back = shifted(torch.maximum(units["soma"], units["output"]), delays, depth, idle)
        pipe = torch.maximum(front, back)
        T, B = busy.shape[:2]
        net = network_ns(links or {}, link_ns if link_ns is not None else torch.zeros(0), T, depth, B)
        pipe_step = torch.maximum(pipe.max(-1).values, net) + bar
    # a core's own work per data step (no idle fill): its units in series (simple) or overlapped (detailed)
    work = busy if mode == "simple" else torch.maximum(units["input"], torch.maximum(units["soma"], units["output"]))
    slowest = torch.bincount(work.argmax(-1).flatten(), minlength=busy.shape[-1])
    return {"latency_s": step.sum(0) * NS, "latency_pipelined_s": pipe_step.sum(0) * NS, "step_s": step * NS,
            "busy_ns": work.sum((0, 1)), "step_total_ns": float(pipe_step.sum()), "slowest": slowest}


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
    encoded = {enc: totals.get(f"syn_{enc}", 0.0) for enc in ENCODINGS}
    terms = {
        "ac": (totals["ac"] - sum(encoded.values())) * profile.ac_pj,
        **{f"synop_{enc}": n * _enc(profile, "pj", enc) for enc, n in encoded.items()},
        "mac": totals["mac"] * profile.mac_pj,
        "neuron_active": totals["active"] * profile.neuron_active_pj,
        "neuron_idle": totals["idle"] * profile.neuron_idle_pj,
        "spike_out": totals.get("spikes", 0.0) * profile.spike_out_pj,
        "message_out": totals.get("msgs", 0.0) * profile.message_out_pj,
        "message_in": totals.get("msgs_in", 0.0) * profile.message_in_pj,
        "spike_in_tile": totals["in_tile"] * profile.spike_in_tile_pj,
        "hop_ew": totals["hops_ew"] * profile.hop_ew_pj,
        "hop_ns": totals["hops_ns"] * profile.hop_ns_pj,
        "chip_link": totals.get("chip_links", 0.0) * profile.chip_link_pj,
        "operand_write": totals.get("operand_writes", 0.0) * profile.operand_write_pj,
    }
    out = {k: v * PJ for k, v in terms.items()}
    out["static"] = profile.static_w_per_chip * chips * seconds_per_inference
    return out


def energy_j(totals: dict[str, float], profile: EnergyProfile, chips: int = 1,
             seconds_per_inference: float = 0.0) -> float:
    """Total energy per inference in joules (dynamic + static)."""
    return float(sum(energy_terms(totals, profile, chips, seconds_per_inference).values()))
