"""Event counts on hand-built process graphs, against counts worked out by hand.

The graph: a static input image (host) drives a 1 x 4 x 4 neuron layer ``n0`` whose
threshold is 1, so it spikes exactly where the input pixel is 1, at every step; a 3 x 3 conv
(``conv``, co-located with the next layer) feeds ``n1`` (threshold too high to spike).
"""

import dataclasses
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.chips import load_chip, load_energy_profile
from hw_sim.counters import Counter, CountPlan
from hw_sim.executor import Executor
from hw_sim.mapping import Group, Mapping, map_graph
from hw_sim.processes import Process, ProcessGraph

NEURON = {"dv": 0, "du": 4096, "state_bits": 24, "decay_bits": 12}
TINY = dataclasses.replace(load_chip("loihi2"), name="tiny", description="2-wide mesh, 8 compartments per core",
                           cores_per_chip=16, neurons_per_core=8, max_fan_in=10 ** 4, max_fan_out=10 ** 4,
                           mesh_cols=2)


def graph(weight, stride=1, size=4):
    w = np.asarray(weight, dtype=np.int64).reshape(1, 1, 3, 3)
    out = (size - 1) // stride + 1
    procs = [
        Process("input", "input", [], (1, size, size), attrs={"bits": 8}, static=True),
        Process("n0", "neuron", ["input"], (1, size, size), params={"vth": np.array([1])}, attrs=NEURON),
        Process("conv", "synapse", ["n0"], (1, out, out), params={"weight": w, "bias": np.zeros(1, np.int64)},
                attrs={"op": "conv", "stride": (stride, stride), "padding": (1, 1), "dilation": (1, 1),
                       "groups": 1, "shift": 0, "graded_input": False, "weight_bits": 8}),
        Process("n1", "neuron", ["conv"], (1, out, out), params={"vth": np.array([10 ** 6])}, attrs=NEURON),
    ]
    return ProcessGraph({p.name: p for p in procs}, "n1", T=2, input_shape=(1, size, size))


def image(points, size=4):
    x = torch.zeros(1, 1, size, size)
    for y, xx in points:
        x[0, 0, y, xx] = 1.0
    return x


def run(pg, mapping, x):
    counter = Counter(CountPlan(pg, mapping), pg.T, x.shape[0])
    res = Executor(pg).run(x, hook=counter, keep=True)
    # the values the counts are taken from, against torch's own conv: ``n0`` spikes exactly at the
    # pixels that are 1, at every step, and ``conv`` is their convolution (``n1``'s logits are all zero)
    spikes = x.expand(pg.T, *x.shape)
    assert torch.equal(res.values["n0"].double(), spikes.double())
    p = pg.processes["conv"]
    want = F.conv2d(x.double(), torch.from_numpy(p.params["weight"]).double(), None, p.attrs.stride, p.attrs.padding)
    assert torch.equal(res.values["conv"].double(), want.expand(pg.T, *want.shape))
    _, ref = FakeQuantModel(pg).run(x, keep=True)
    assert torch.equal(ref["conv"].double().expand(pg.T, *want.shape), want.expand(pg.T, *want.shape))
    return counter.counts, res


@pytest.mark.parametrize("point, fanout", [((0, 0), 4), ((0, 3), 4), ((0, 1), 6), ((2, 0), 6), ((1, 2), 9)])
def test_same_conv_corner_edge_centre(point, fanout):
    pg = graph(np.ones((3, 3)))
    counts, res = run(pg, map_graph(pg, TINY), image([point]))
    assert res.values["n0"].sum() == pg.T                      # one spike per step
    assert counts.layers["conv"]["ac"] == fanout * pg.T


def hand_fanout(w, y, x, size, stride):
    """Outputs reached by input (y, x) through non-zero taps: a loop over outputs and taps."""
    out = (size - 1) // stride + 1
    n = 0
    for oy, ox, ky, kx in itertools.product(range(out), range(out), range(3), range(3)):
        if oy * stride - 1 + ky == y and ox * stride - 1 + kx == x and w[ky][kx] != 0:
            n += 1
    return n


@pytest.mark.parametrize("stride", [1, 2])
def test_zero_taps_and_strides_against_a_loop(stride):
    w = [[1, 2, 0], [0, -3, 1], [1, 0, 1]]       # zero mantissas are not stored: they cost nothing
    pg = graph(w, stride=stride, size=5)
    points = [(0, 0), (0, 4), (1, 1), (2, 3), (4, 4), (3, 0)]
    counts, _ = run(pg, map_graph(pg, TINY), image(points, size=5))
    want = sum(hand_fanout(w, y, x, 5, stride) for y, x in points)
    assert counts.layers["conv"]["ac"] == want * pg.T
    if stride == 2:   # per dimension a 3x3/2 pad-1 conv on 5 pixels reaches [1, 2, 1, 2, 1] outputs
        assert hand_fanout(np.ones((3, 3)), 0, 1, 5, 2) == 2 and hand_fanout(np.ones((3, 3)), 1, 1, 5, 2) == 4


def test_messages_and_hops_on_two_cores():
    # tiny chip: 8 compartments per core, mesh 2 wide: n0 rows 0-1 on core 0 (x0, y0), rows 2-3 on
    # core 1 (x1, y0); n1 rows 0-1 on core 2 (x0, y1), rows 2-3 on core 3 (x1, y1)
    pg = graph(np.ones((3, 3)))
    mapping = map_graph(pg, TINY)
    assert [(g.name, g.first_core, g.cores) for g in mapping.groups.values()] == [("n0", 0, 2), ("n1", 2, 2)]
    counts, _ = run(pg, mapping, image([(0, 0), (1, 2), (3, 3)]))
    c = {k: v[0, 0].tolist() for k, v in counts.core.items()}     # step 0, sample 0
    # (0,0) on core 0 reaches n1 rows 0-1: core 2, one N-S hop
    # (1,2) on core 0 reaches rows 0-2: core 2 (1 N-S hop) and core 3 (1 E-W + 1 N-S)
    # (3,3) on core 1 reaches rows 2-3: core 3, one N-S hop
    assert c["msgs"] == [3, 1, 0, 0]
    assert c["hops_ew"] == [1, 0, 0, 0]
    assert c["hops_ns"] == [3, 1, 0, 0]
    assert c["in_tile"] == [0, 0, 0, 0]
    # ACs land where the weights live: (0,0) -> 4 on core 2; (1,2) -> 6 on core 2, 3 on core 3; (3,3) -> 4 on core 3
    assert c["ac"] == [0, 0, 10, 7]
    assert c["spikes"] == [2, 1, 0, 0]
    assert c["active"][:2] == [2, 1] and c["idle"][:2] == [6, 7]
    # the host sends the three non-zero pixels once per inference; none at the next step
    assert counts.embedded["msgs"].tolist() == [3]
    assert counts.core["msgs"][1, 0].tolist() == [3, 1, 0, 0]


def test_messages_received_encodings_and_link_loads_by_hand():
    # the same three spikes as above; the detailed plan also routes them over the mesh's links
    pg = graph(np.ones((3, 3)))
    mapping = map_graph(pg, TINY)
    prof = load_energy_profile("loihi1")
    counter = Counter(CountPlan(pg, mapping, links=prof), pg.T, 1)
    Executor(pg).run(image([(0, 0), (1, 2), (3, 3)]), hook=counter)
    c = {k: v[0, 0].tolist() for k, v in counter.counts.core.items()}
    # received: core 2 gets (0,0) and (1,2), core 3 gets (1,2) and (3,3); at step 0 the host's three
    # pixels reach n0's cores too (two in rows 0-1 on core 0, one on core 1), once per inference
    assert c["msgs_in"] == [2, 1, 2, 2]
    assert counter.counts.core["msgs_in"][1, 0].tolist() == [0, 0, 2, 2]
    # TINY has the convolutional encoding (loihi2's conv_word_bits): every conv op is a conv-encoded one
    assert c["syn_conv"] == c["ac"] == [0, 0, 10, 7] and c["syn_dense"] == c["syn_sparse"] == [0] * 4
    # links, numbered (y * 2 + x) * 4 + direction (0 east, 2 south), routed east-west first:
    # core 0 (0,0) -> core 2 (0,1): south link 2, twice; core 0 -> core 3 (1,1): east link 0 then
    # south link 6; core 1 (1,0) -> core 3: south link 6
    loads, path = counter.counts.links[0]   # n0 has delay 0
    got = {i: v for i, v in enumerate(loads[0, 0].tolist()) if v}
    assert got == {0: 1.0, 2: 2.0, 6: 2.0}
    assert path[0, 0].item() == pytest.approx(prof.hop_ew_ns + prof.hop_ns_ns)   # the 2-hop route is the longest


def test_intra_core_deliveries_are_in_tile():
    # a hand mapping that puts n0 (whole) and n1's first half on the same core 0
    pg = graph(np.ones((3, 3)))
    chip = dict(TINY.__dict__)
    groups = {"n0": Group("n0", 16, ["n0"], 0.0, 0, chunk=16, first_core=0, cores=1),
              "n1": Group("n1", 16, ["n1", "conv"], 9.0, 0, chunk=8, first_core=0, cores=2)}
    placement = {"input": "host", "n0": "n0", "conv": "n1", "n1": "n1"}
    mapping = Mapping(chip, groups, ["input"], placement)
    counts, _ = run(pg, mapping, image([(0, 0), (1, 2), (3, 3)]))
    c = {k: v[0, 0].tolist() for k, v in counts.core.items()}
    # deliveries to core 0 stay in the core; to core 1 (x1, y0) cost one E-W hop
    assert c["in_tile"] == [2, 0] and c["msgs"] == [4, 0]
    assert c["hops_ew"] == [2, 0] and c["hops_ns"] == [0, 0]


def test_pipeline_depth_counts_groups():
    pg = graph(np.ones((3, 3)))
    plan = CountPlan(pg, map_graph(pg, TINY))
    assert plan.delay == {"n0": 0, "n1": 1} and plan.depth == 1
    assert plan.core_delay.tolist() == [0, 0, 1, 1]
