"""The SANA-FE export against SANA-FE itself (PyPI ``sanafe``, its bundled Loihi architecture).

SANA-FE is an independent implementation of a Loihi-style chip (SLAM-Lab's C++ simulator): the tiny
binary CNN written into it must spike exactly as our executor does, neuron for neuron and step for
step (after SANA-FE's one-step delivery per layer), with the same synaptic events and messages, and
each neuron must sit where our placement convention puts it (SANA-FE's own message trace says where).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

sanafe = pytest.importorskip("sanafe", reason="SANA-FE is an optional extra: pip install .[sanafe]")

from exporters.sanafe.network import CORES_PER_TILE, MESH_W, SanafeExportError, build_network  # noqa: E402
from exporters.sanafe.run import SanafeChip, aligned_spikes  # noqa: E402
from exporters.sanafe.tiny_cnn import map_binary_input, random_frames, tiny_cnn  # noqa: E402
from hw_sim.connectivity import CountPlan  # noqa: E402
from hw_sim.counters import Counter  # noqa: E402
from hw_sim.executor import Executor  # noqa: E402
from hw_sim.processes import Process  # noqa: E402


@pytest.fixture(scope="module")
def both():
    """The tiny CNN spread by the latency objective (107 cores on 27 tiles: real hops), run by our
    executor with its counter and by SANA-FE (simple timing)."""
    pg = tiny_cnn(T=8, seed=0)
    mapping = map_binary_input(pg, "loihi1", "latency")
    frames = random_frames(8, 1, seed=1)[0]
    plan = CountPlan(pg, mapping)
    counter = Counter(plan, pg.T, 1)
    result = Executor(pg).run(torch.from_numpy(frames)[:, None], hook=counter, keep=True)
    run = SanafeChip(build_network(pg, mapping, frames, extra_steps=plan.depth)).run(pg.T + plan.depth)
    return pg, mapping, plan, result, counter.counts, run


def test_sanafe_spikes_equal_our_executor(both):
    pg, _, plan, result, _, run = both
    for name in ("input", "lif1", "lif2", "lif3"):
        ours = (result.values[name][:, 0].reshape(pg.T, -1) != 0).numpy()
        assert 0 < ours.mean() < 1, f"{name} must fire sometimes, not always, for the check to mean anything"
        assert np.array_equal(aligned_spikes(run, name, plan.delay[name], pg.T), ours), name
    # nothing left over: SANA-FE's steps before each layer's delay and after its window are silent
    for name in ("lif1", "lif2", "lif3"):
        s = run.spikes[name]
        assert not s[:plan.delay[name]].any() and not s[plan.delay[name] + pg.T:].any()


def test_sanafe_synaptic_events_and_messages_equal_our_counts(both):
    *_, counts, run = both
    assert run.synaptic_events == int(counts.core["ac"].sum())
    assert run.packets == int(counts.core["msgs"].sum())


def test_every_neuron_sits_on_our_tile_and_core(both):
    """SANA-FE's trace gives each message's source tile (x, y) and core offset: it must be where our
    core sits (core c in tile c // 4, tile t at x = t % 8, y = t // 8)."""
    _, mapping, *_, run = both
    assert run.messages
    for m in run.messages:
        core = int(mapping.core_of(mapping.placement[m["src_neuron_group_id"]], m["src_neuron_offset"]))
        tile = core // CORES_PER_TILE
        assert (m["src_x"], m["src_y"], m["src_core_offset"]) == (tile % MESH_W, tile // MESH_W, core % CORES_PER_TILE)


def _altered(name: str, **attrs):
    """The tiny CNN with process ``name``'s attributes changed."""
    pg = tiny_cnn(T=2)
    p = pg.processes[name]
    pg.processes[name] = Process(p.name, p.kind, p.sources, p.out_shape, params=p.params,
                                 attrs={**p.attrs.to_dict(), **attrs})
    return pg


@pytest.mark.parametrize("pg, message", [
    (_altered("conv1", graded_input=True), "binary spikes only: synapse 'conv1' reads graded values"),
    (_altered("lif2", dv=100), "neuron 'lif2' has du = 4096, dv = 100; the SANA-FE export takes integrate-and-fire"),
], ids=["graded-synapse-input", "leak"])
def test_the_writer_refuses_what_sanafe_cannot_express(pg, message):
    mapping = map_binary_input(tiny_cnn(T=2), "loihi1", "cores")
    with pytest.raises(SanafeExportError, match=message):
        build_network(pg, mapping, random_frames(2, 1)[0])


def test_the_writer_refuses_graded_input_frames():
    pg = tiny_cnn(T=2)
    mapping = map_binary_input(pg, "loihi1", "cores")
    graded_frames = random_frames(2, 1)[0] * 3
    with pytest.raises(SanafeExportError, match="binary spikes: the frames hold the graded value 3; give 0/1 frames"):
        build_network(pg, mapping, graded_frames)
