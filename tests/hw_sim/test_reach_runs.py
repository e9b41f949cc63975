"""The set-up's runs-based reach (hw_sim/reach_runs.py) and receiver tables (hw_sim/receivers.py),
against a second implementation: full-size masks pushed back by hw_sim/reach.py, one core at a time.

- every kind, on hand-built convolutions (strides, padding, dilation, groups, zero weights), pools,
  a dense layer and every process of the nano models' lowered graphs, for random selections;
- the count plan's message tables (routes per element) and per-core received messages, against
  the same quantities enumerated pair by pair from the full-size masks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sresformer
from exporters.loihi.export import lowered_graph
from hw_sim.chips import load_chip
from hw_sim.connectivity import CountPlan
from hw_sim.mapping import ROUTE, map_graph
from hw_sim.op_kernels import numel
from hw_sim.processes import Process, ProcessGraph
from hw_sim.reach import back
from hw_sim.reach_runs import Reach, from_mask, merged, split, to_mask, transposed_conv
from testutil import lively, lively_spikformer_nano

SYN = {"shift": 0, "graded_input": False, "weight_bits": 8}


def conv_graph(cin, cout, size, k, stride, padding, dilation, groups, zero_frac, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, size=(cout, cin // groups, k, k))
    w[rng.random(w.shape) < zero_frac] = 0
    o = (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    procs = [Process("x", "input", [], (cin, size, size), attrs={"bits": 8}, static=True),
             Process("c", "synapse", ["x"], (cout, o, o), params={"weight": w, "bias": np.zeros(cout, np.int64)},
                     attrs={"op": "conv", "stride": (stride, stride), "padding": (padding, padding),
                            "dilation": (dilation, dilation), "groups": groups, **SYN})]
    return ProcessGraph({p.name: p for p in procs}, "c", T=1, input_shape=(cin, size, size))


def pool_graph(kind, c, size, k, stride, padding):
    o = (size + 2 * padding - k) // stride + 1
    procs = [Process("x", "input", [], (c, size, size), attrs={"bits": 8}, static=True),
             Process("p", kind, ["x"], (c, o, o), attrs={"kernel": (k, k), "stride": (stride, stride),
                                                         "padding": (padding, padding)})]
    return ProcessGraph({p.name: p for p in procs}, "p", T=1, input_shape=(c, size, size))


def selections(n, rng, trials=12):
    """Runs to push back: everything, single runs of all lengths, and a few scattered runs."""
    yield np.array([[0, n]])
    for t in range(trials):
        a = int(rng.integers(0, n))
        b = int(rng.integers(a + 1, n + 1)) if t % 3 else min(n, a + int(rng.integers(1, 4)))
        runs = [[a, b]]
        if t % 4 == 3:
            runs += [[int(s), int(s) + 2] for s in rng.integers(0, n - 2, 3)]
        yield merged(np.minimum(np.array(runs), n))


def assert_same_reach(pg, p, rng):
    reach = Reach(pg)
    n = numel(p.out_shape)
    for runs in selections(n, rng):
        want = {}
        for s, c in back(p, pg, torch.from_numpy(to_mask(runs, n)).float()):
            want[s] = want.get(s, 0) + c
        want = {s: from_mask(c.numpy() > 0) for s, c in want.items()}
        got = {}
        for s, r in reach.back(p, runs):
            got[s] = merged(np.concatenate([got[s], r])) if s in got else r
        none = np.zeros((0, 2), np.int64)
        for s in set(got) | set(want):
            assert np.array_equal(got.get(s, none), want.get(s, none)), (p.name, runs)


@pytest.mark.parametrize("cin,cout,size,k,stride,padding,dilation,groups,zero_frac", [
    (3, 4, 9, 3, 1, 1, 1, 1, 0.0), (3, 4, 9, 3, 2, 1, 1, 1, 0.5), (4, 6, 8, 3, 1, 2, 2, 2, 0.3),
    (6, 6, 7, 1, 1, 0, 1, 6, 0.2), (2, 3, 10, 5, 3, 2, 1, 1, 0.7), (4, 8, 6, 3, 2, 0, 1, 4, 0.9),
    (8, 4, 7, 3, 1, 1, 1, 4, 0.3), (6, 9, 8, 3, 1, 1, 1, 3, 0.0),
])
def test_a_convolutions_reach_is_the_full_size_push_back(cin, cout, size, k, stride, padding, dilation, groups,
                                                           zero_frac):
    pg = conv_graph(cin, cout, size, k, stride, padding, dilation, groups, zero_frac, seed=cin * cout + k)
    assert_same_reach(pg, pg.processes["c"], np.random.default_rng(0))


@pytest.mark.parametrize("kind", ["sumpool", "maxpool"])
@pytest.mark.parametrize("k,stride,padding", [(2, 2, 0), (3, 1, 1), (3, 2, 1)])
def test_a_pools_reach_is_the_full_size_push_back(kind, k, stride, padding):
    pg = pool_graph(kind, 3, 8, k, stride, padding)
    assert_same_reach(pg, pg.processes["p"], np.random.default_rng(1))


def test_a_dense_layers_reach_is_the_full_size_push_back():
    rng = np.random.default_rng(2)
    w = rng.integers(-2, 3, size=(7, 20))
    w[:, 5] = 0   # an input no stored synapse reads
    procs = [Process("x", "input", [], (20,), attrs={"bits": 8}, static=True),
             Process("d", "synapse", ["x"], (7,), params={"weight": w, "bias": np.zeros(7, np.int64)},
                     attrs={"op": "dense", **SYN})]
    pg = ProcessGraph({p.name: p for p in procs}, "d", T=1, input_shape=(20,))
    assert_same_reach(pg, pg.processes["d"], rng)


def test_split_and_runs_round_trip():
    rng = np.random.default_rng(3)
    mask = rng.random(500) < 0.4
    runs = from_mask(mask)
    assert np.array_equal(to_mask(runs, 500), mask)
    pieces, which = split(runs, 7)
    assert np.array_equal(to_mask(pieces, 500), mask)
    assert (pieces[:, 0] // 7 == (pieces[:, 1] - 1) // 7).all()
    assert (runs[which, 0] <= pieces[:, 0]).all()


@pytest.fixture(scope="module")
def graphs():
    """The nano SpikingResformer and Spikformer, lowered for the product-compartment chip and the
    operand-memory core (every kind the lowering makes, DSSA's and SSA's product forms among them)."""
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    nano = lively(sresformer.create_model("spikingresformer_nano"), torch.rand(8, 3, 32, 32) * 2 - 1)
    spik = lively_spikformer_nano()
    out = {}
    for name, model in (("spikingresformer_nano", nano), ("spikformer_nano", spik)):
        sresformer.save_checkpoint(model, d / f"{name}.ckpt")
        for chip in ("loihi2", "loihi2-opmem"):
            spec = load_chip(chip)
            pg = lowered_graph(str(d / f"{name}.ckpt"), "synthetic", None, chip=spec, calib_images=4,
                               eval_images=2).pg
            out[name, chip] = (pg, map_graph(pg, spec, max_chips=1 << 20, fan_out=False))
    return out


KEYS = [(m, c) for m in ("spikingresformer_nano", "spikformer_nano") for c in ("loihi2", "loihi2-opmem")]


@pytest.mark.parametrize("key", KEYS)
def test_every_process_of_the_nano_models_reaches_as_the_full_size_push_back(graphs, key):
    pg, _ = graphs[key]
    rng = np.random.default_rng(4)
    kinds = set()
    for p in pg:
        assert_same_reach(pg, p, rng)
        kinds.add(p.kind)
    assert {"synapse", "neuron", "sum"} <= kinds and kinds & {"dsmm", "prodmm"}


def enumerated(pg, mapping, plan):
    """Per sender: its ``(core, element)`` pairs, from full-size masks pushed back one core at a time."""
    pairs = {}
    for g in mapping.groups.values():
        if pg.processes[g.name].kind == "prodmm":
            continue   # product compartments: their own geometry (tests/hw_sim/test_prodneuron.py)
        members = [p for p in reversed(list(pg)) if mapping.placement.get(p.name) == g.name]
        for c in range(g.cores):
            masks = {g.name: torch.zeros(g.size)}
            masks[g.name][c * g.chunk:(c + 1) * g.chunk] = 1
            for p in members:
                m = masks.pop(p.name, None)
                if m is None:
                    continue
                for src, cnt in back(p, pg, m):
                    inside = mapping.placement.get(src) == g.name and src != g.name
                    key = src if inside else plan._sender(src)
                    if inside:
                        masks[key] = masks.get(key, 0) + cnt
                    elif pg.processes[key].kind != "prodmm":
                        pairs.setdefault(key, set()).update((g.first_core + c, int(i)) for i in torch.nonzero(cnt > 0))
    return pairs


@pytest.mark.parametrize("key", [k for k in KEYS if k[1] == "loihi2-opmem"])
def test_message_tables_and_received_messages_equal_the_enumerated_pairs(graphs, key):
    pg, mapping = graphs[key]
    plan = CountPlan(pg, mapping)
    pairs = enumerated(pg, mapping, plan)
    rng = torch.Generator().manual_seed(5)
    assert pairs and set(pairs) <= set(plan.recv)
    for name, ps in pairs.items():
        n = numel(pg.processes[name].out_shape)
        g = plan.home_group(name)
        core, elem = (np.array(v) for v in zip(*sorted(ps), strict=True))
        # routes per element: each pair is one message from the element's core to the reading core
        want = np.zeros((n, len(ROUTE)))
        src = g.first_core + elem // g.chunk if g is not None else None
        if g is None:
            np.add.at(want[:, 1], elem, 1)
        else:
            np.add.at(want, elem, mapping.route(src, core))
        table = plan.send[name]
        got = (table.double().flatten(1, 2).reshape(-1, len(ROUTE))[:n] if g is not None else table).numpy()
        to_host = 1 if any(name == plan._sender(s) for p in pg if p.name in plan.host_ops and not p.static
                           for s in p.sources) else 0
        want[:, 1] += to_host
        np.testing.assert_array_equal(got, want, err_msg=name)
        nz = (torch.rand(3, n, generator=rng) < 0.3).double()
        recv = torch.zeros(3, plan.ncores, dtype=torch.float64)
        recv.index_add_(1, torch.from_numpy(core), nz[:, torch.from_numpy(elem)])
        assert torch.equal(plan.recv[name].received(nz), recv), name


@pytest.mark.parametrize("cin,cout,groups,k,stride,dilation", [
    (3, 5, 1, 3, 1, 1), (4, 6, 2, 3, 2, 1), (6, 6, 6, 5, 3, 2), (2, 7, 1, 1, 2, 1), (4, 8, 4, 3, 1, 3),
])
def test_the_transposed_convolution_by_conv2d_equals_torchs(cin, cout, groups, k, stride, dilation):
    """:func:`hw_sim.reach_runs.transposed_conv` against ``torch.nn.functional.conv_transpose2d`` itself:
    the same values (small integers, exact in float32), not only the same support."""
    g = torch.Generator().manual_seed(cin * 10 + k)
    x = torch.randint(0, 3, (2, cin, 6, 5), generator=g).float()
    w = torch.randint(-2, 3, (cin, cout // groups, k, k), generator=g).float()
    want = torch.nn.functional.conv_transpose2d(x, w, stride=stride, dilation=dilation, groups=groups)
    assert torch.equal(transposed_conv(x, w, (stride, stride), (dilation, dilation), groups), want)
