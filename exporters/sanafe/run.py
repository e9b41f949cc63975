"""Run a built SANA-FE network and read back its spikes, event counts, energy and time.

SANA-FE delivers a spike in the step after it is sent (its messages are processed into a time-step
buffer the soma reads next step), so a neuron ``d`` synapse layers from the input spikes at step
``t + d`` for input step ``t``: the chip's pipelined schedule, which our cost model times too
(``hw_sim/cycles.py``, ``pipelined``). :func:`aligned_spikes` undoes that shift with the delays our
count plan gives each group, so the two simulators' spikes compare step for step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import Built

# SpikingChip.sim's timing models: analytical (simple, detailed) and cycle (its bundled Booksim 2 NoC model)
TIMING_MODELS = ("simple", "detailed", "cycle")

#: SANA-FE's per-event Loihi energies (J), as its bundled architecture states them (sanafe 2.2.9,
#: sanafe/examples/loihi.yaml, from Davies et al. 2018 SPICE figures); used only to split SANA-FE's four
#: reported categories into terms, and :func:`sanafe_terms` checks the split sums back to them.
LOIHI_YAML_J = {
    "access_neuron": 51.2e-12,      # soma loihi_lif energy_access_neuron: every LIF compartment, every step
    "update_neuron": 21.6e-12,      # soma loihi_lif energy_update_neuron: when updated (input, v != 0)
    "spike_out": 69.3e-12,          # soma loihi_lif energy_spike_out: per LIF spike (input somas: 0)
    "message_out": 111.0e-12,       # axon_out loihi_out energy_message_out: per message (packet)
    "message_in": 0.0,              # axon_in loihi_in energy_message_in
    "hop_ew": 3.0e-12,              # tile energy_east_hop / energy_west_hop
    "hop_ns": 4.2e-12,              # tile energy_north_hop / energy_south_hop
    "conv": 24.0e-12,               # synapse loihi_conv_synapse energy_process_spike
    "dense": 35.5e-12,              # synapse loihi_dense_synapse energy_process_spike
}


@dataclass
class SanafeRun:
    """One SANA-FE simulation: per-group spikes ``[steps, neurons]`` (bool) and its reported figures."""

    timing_model: str
    steps: int
    spikes: dict[str, np.ndarray]
    energy_j: dict[str, float]        # SANA-FE's breakdown: synapse, dendrite, soma, network, total
    sim_time_s: float
    perf: dict[str, list]             # per step: spikes (synaptic events), fired, updated, hops, energies
    packets: int                      # messages sent (one per source neuron and destination core)
    hops_ew: int                      # tile hops of the messages, east-west (x) and north-south (y)
    hops_ns: int
    lif_neurons: int                  # LIF compartments (each is accessed every step)
    messages: list[dict]              # SANA-FE's message trace (placeholders left out)

    @property
    def synaptic_events(self) -> int:
        """Synapses processed over the run (SANA-FE's per-step ``spikes``: one per synapse a message reaches)."""
        return int(sum(self.perf["spikes"]))


def _address(a) -> tuple[str, int]:
    """``(group, offset)`` of a SANA-FE spike-trace entry."""
    group, offset = getattr(a, "group_name", None), getattr(a, "neuron_offset", None)
    if group is None or offset is None:
        group, _, offset = str(a).rpartition(".")
    return str(group), int(offset)


class SanafeChip:
    """SANA-FE's Loihi chip with one built network: the chip is made once (seconds: 128 cores of 1,030
    pipeline units each) and the network loaded afresh for every run (SANA-FE's input neurons consume
    their spike trains; a fresh load restores them, ``SpikingChip.reset`` does not)."""

    def __init__(self, built: Built):
        import sanafe

        self.built = built
        self.chip = sanafe.SpikingChip(built.arch)

    def run(self, steps: int, timing_model: str = "simple") -> SanafeRun:
        """Load the network and run ``steps`` steps with SANA-FE's ``timing_model``."""
        if timing_model not in TIMING_MODELS:
            raise ValueError(f"unknown SANA-FE timing model {timing_model!r}; choose {' or '.join(TIMING_MODELS)}")
        net = self.built.net
        self.chip.load(net)
        res = self.chip.sim(steps, timing_model=timing_model, spike_trace=True, perf_trace=True,
                            message_trace=True, processing_threads=1)
        msgs = [m for step in res["message_trace"] for m in step if not m["placeholder"]]
        spikes = {g: np.zeros((steps, len(net[g])), dtype=bool) for g in self.built.groups}
        for t, fired in enumerate(res["spike_trace"]):
            for a in fired:
                g, k = _address(a)
                spikes[g][t, k] = True
        return SanafeRun(timing_model, steps, spikes, {k: float(v) for k, v in res["energy"].items()},
                         float(res["sim_time"]), dict(res["perf_trace"]), int(res["packets_sent"]),
                         sum(abs(m["src_x"] - m["dest_x"]) for m in msgs),
                         sum(abs(m["src_y"] - m["dest_y"]) for m in msgs),
                         sum(len(net[g]) for g in self.built.lif_groups), msgs)


def aligned_spikes(run: SanafeRun, name: str, delay: int, T: int) -> np.ndarray:
    """SANA-FE's spikes of group ``name`` for input steps ``0..T-1``: its steps ``delay..delay+T-1``."""
    return run.spikes[name][delay:delay + T]


def sanafe_counts(run: SanafeRun, lif_spikes: int) -> dict[str, int]:
    """SANA-FE's event counts of a run: ``synaptic`` events, split into ``conv`` and ``dense`` by solving
    its synapse energy for the two encodings' prices; ``updated`` LIF compartments (its per-step
    ``updated`` also counts every input neuron that fired: ``fired - lif_spikes`` of them);
    ``accessed`` (every LIF compartment, every step), ``spikes`` (``lif_spikes``), ``messages``,
    ``hops_ew``, ``hops_ns``."""
    c = LOIHI_YAML_J
    n = run.synaptic_events
    conv = round((c["dense"] * n - run.energy_j["synapse"]) / (c["dense"] - c["conv"]))
    inputs_fired = int(sum(run.perf["fired"])) - lif_spikes
    return {"synaptic": n, "conv": conv, "dense": n - conv, "accessed": run.lif_neurons * run.steps,
            "updated": int(sum(run.perf["updated"])) - inputs_fired, "spikes": lif_spikes,
            "messages": run.packets, "hops_ew": run.hops_ew, "hops_ns": run.hops_ns}


def sanafe_terms(run: SanafeRun, counts: dict[str, int]) -> dict[str, float]:
    """SANA-FE's energy (J) split into terms from its ``counts`` (:func:`sanafe_counts`) and
    ``LOIHI_YAML_J``: ``synapse``, ``neuron_access``, ``neuron_update``, ``spike_out``, ``message_out``,
    ``hops``. Raises ``RuntimeError`` when the split does not sum back to SANA-FE's reported synapse,
    soma and network energies (a SANA-FE whose constants or accounting differ from the table)."""
    c = LOIHI_YAML_J
    terms = {
        "synapse": counts["conv"] * c["conv"] + counts["dense"] * c["dense"],
        "neuron_access": counts["accessed"] * c["access_neuron"],
        "neuron_update": counts["updated"] * c["update_neuron"],
        "spike_out": counts["spikes"] * c["spike_out"],
        "message_out": counts["messages"] * (c["message_out"] + c["message_in"]),
        "hops": counts["hops_ew"] * c["hop_ew"] + counts["hops_ns"] * c["hop_ns"],
    }
    for name, parts in (("synapse", ("synapse",)), ("soma", ("neuron_access", "neuron_update", "spike_out")),
                        ("network", ("message_out", "hops"))):
        mine, theirs = sum(terms[p] for p in parts), run.energy_j[name]
        if abs(mine - theirs) > 1e-9 * max(abs(theirs), 1e-15):
            raise RuntimeError(f"SANA-FE's {name} energy {theirs:.6e} J is not the split's {mine:.6e} J: its "
                               "accounting or loihi.yaml constants differ from LOIHI_YAML_J")
    return terms
