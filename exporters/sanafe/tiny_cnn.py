"""A tiny binary spiking CNN in hw_sim's own format, that SANA-FE's Loihi model computes exactly.

``input spikes [1, 8, 8] -> conv 3x3 (1 -> 4) -> IF -> conv 3x3 (4 -> 4) -> IF -> flatten -> dense (64 -> 10) -> IF``

Every neuron is an integrate-and-fire compartment both simulators implement with the same integers:
no current memory (``du = 2**12``: ``u = in`` each step, SANA-FE's ``input_decay = 0``), no leak
(``dv = 0``, SANA-FE's ``leak_decay = 1``), hard reset to 0, synaptic shift 0 and no bias, so the
membrane is the plain sum of integer weights of the spikes received. Weights are small random
integers (seeded), thresholds fixed per layer so that every layer fires on random input. The input
is a frames input (``input_static = False``): one binary frame per step.
"""

from __future__ import annotations

import numpy as np

from hw_sim.processes import Process, ProcessGraph

DECAY_BITS = 12          # Loihi's du, dv resolution (Davies et al. 2018; hw_sim/profiles/loihi1.toml decay_bits)
STATE_BITS = 24          # Loihi's 24-bit membrane (Davies et al. 2018; loihi1.toml state_bits)
WEIGHT_BITS = 8          # Loihi's 8-bit signed weight mantissa (loihi1.toml weight_bits)


def _if_neuron(name: str, src: str, shape: tuple[int, ...], vth: int) -> Process:
    """An IF neuron: ``u = in``, ``v += u``, spike when ``v >= vth``, hard reset."""
    return Process(name, "neuron", [src], shape, params={"vth": np.full(1, vth, np.int64)},
                   attrs={"du": 1 << DECAY_BITS, "dv": 0, "state_bits": STATE_BITS, "decay_bits": DECAY_BITS})


def _conv(name: str, src: str, weight: np.ndarray, out_shape: tuple[int, ...]) -> Process:
    """A 3x3 stride-1 unpadded binary-input conv synapse with integer weights (shift 0, no bias)."""
    bias = np.zeros(weight.shape[0], np.int64)
    return Process(name, "synapse", [src], out_shape, params={"weight": weight, "bias": bias},
                   attrs={"op": "conv", "shift": 0, "graded_input": False, "weight_bits": WEIGHT_BITS,
                          "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1,
                          "out_bits": STATE_BITS})


def tiny_cnn(T: int = 8, seed: int = 0) -> ProcessGraph:
    """The benchmark's network (module docstring), weights drawn from ``seed``; ``T`` steps per sample."""
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-2, 6, size=(4, 1, 3, 3))
    w2 = rng.integers(-2, 6, size=(4, 4, 3, 3))
    w3 = rng.integers(-3, 6, size=(10, 64))
    procs = [
        Process("input", "input", [], (1, 8, 8), attrs={"bits": 2}),
        _conv("conv1", "input", w1, (4, 6, 6)),
        _if_neuron("lif1", "conv1", (4, 6, 6), 8),
        _conv("conv2", "lif1", w2, (4, 4, 4)),
        _if_neuron("lif2", "conv2", (4, 4, 4), 40),
        Process("flat", "flatten", ["lif2"], (64,)),
        Process("fc", "synapse", ["flat"], (10,), params={"weight": w3, "bias": np.zeros(10, np.int64)},
                attrs={"op": "dense", "shift": 0, "graded_input": False, "weight_bits": WEIGHT_BITS,
                       "out_bits": STATE_BITS}),
        _if_neuron("lif3", "fc", (10,), 40),
    ]
    return ProcessGraph({p.name: p for p in procs}, "lif3", T=T, input_shape=(1, 8, 8), input_static=False)


def random_frames(T: int, n: int = 1, rate: float = 0.3, seed: int = 1) -> np.ndarray:
    """``n`` samples of binary frames ``[n, T, 1, 8, 8]`` (float64 0/1), each pixel on with ``rate``."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, T, 1, 8, 8)) < rate).astype(np.float64)


def map_binary_input(pg: ProcessGraph, chip_name: str = "loihi1", objective: str = "latency"):
    """``hw_sim.mapping.map_graph`` on ``chip_name`` for a graph whose frames input carries 0/1 spikes.

    ``map_graph`` treats every ``input`` value as graded and so refuses a binary-spike chip (Loihi 1)
    for a frames input; here the input is spikes by construction (the callers check every frame is
    0/1), so the graph is mapped with the refusal lifted (``graded_spike_bits`` only gates that
    refusal) and the chip's own description is put back in the mapping.
    """
    import dataclasses

    from hw_sim.chips import load_chip
    from hw_sim.mapping import map_graph

    chip = load_chip(chip_name)
    mapping = map_graph(pg, dataclasses.replace(chip, graded_spike_bits=1), objective=objective)
    mapping.chip = dict(chip.__dict__)
    return mapping
