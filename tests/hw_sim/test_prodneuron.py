"""``prodmm``: the product-neuron construction of every product form, against references written here.

References (none of them read ``hw_sim/products.py`` or ``hw_sim/prodneuron.py``):

- the construction itself, compartment by compartment: ``P[h, i, j, q]`` applies Lava's
  ``ProdNeuron`` fixed-point rule (``v = (a1 * a2) >> exp``, sent when ``|v| > vth``, here
  ``exp = 0``, ``vth = 0``) to the operand elements the papers' equations name (``IDX`` below)
  and its graded spike is added into ``out[h, i, q]``;
- the plain matrix product of the per-head views (numpy);
- the per-core resources and the per-step event counts, recounted by enumerating every
  compartment of every core and every event.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.chips import load_chip, load_energy_profile
from hw_sim.counters import Counter, CountPlan
from hw_sim.cycles import energy_terms
from hw_sim.executor import Executor
from hw_sim.mapping import map_graph
from hw_sim.processes import Process, ProcessGraph
from hw_sim.resources import GroupCost

NEURON = {"du": 4096, "dv": 0, "state_bits": 24, "decay_bits": 12}
HEADS, D, N, HW = 2, 2, 3, 4

# form -> (dyn shape, spk shape, out shape, (r, k, c), L(h, i, j), R(h, j, q)) where L and R give the
# operand ('y' dynamic, 's' spikes) and the (row, col) of the element, from the papers' equations:
# DSSA (Shi et al. 2024) eq. 9: A = y1^T S; eq. 10: O = y2 A; Spikformer SSA (Zhou et al. 2023) eq. 6.
IDX = {
    "y1T@s": ((HEADS * 2 * D, N), (HEADS * D, HW), (HEADS * N, HW), (N, D, HW),
              lambda h, i, j: ("y", h * 2 * D + j, i), lambda h, j, q: ("s", h * D + j, q)),
    "y2@a": ((HEADS * 2 * D, N), (HEADS * N, HW), (HEADS * D, HW), (D, N, HW),
             lambda h, i, j: ("y", h * 2 * D + D + i, j), lambda h, j, q: ("s", h * N + j, q)),
    "kT@v": ((HEADS * D, N), (HEADS * D, N), (HEADS * D, D, 1), (D, N, D),          # K V^T
             lambda h, i, j: ("y", h * D + i, j), lambda h, j, q: ("s", h * D + q, j)),
    "q@kv": ((HEADS * D, D), (HEADS * D, N), (HEADS * D, N), (D, D, N),             # KV^T Q
             lambda h, i, j: ("y", h * D + j, i), lambda h, j, q: ("s", h * D + j, q)),
    "q@kT": ((HEADS * D, N), (HEADS * D, N), (HEADS * N, N), (N, D, N),             # Q^T K
             lambda h, i, j: ("y", h * D + j, i), lambda h, j, q: ("s", h * D + j, q)),
    "qk@v": ((HEADS * N, N), (HEADS * D, N), (HEADS * D, N), (D, N, N),             # V QK^T, V spikes
             lambda h, i, j: ("s", h * D + i, j), lambda h, j, q: ("y", h * N + q, j)),
}


def _conv1(name, src, cin, cout, rng, graded):
    w = rng.integers(-5, 6, size=(cout, cin, 1, 1))
    return Process(name, "synapse", [src], (cout, 1, 1), params={"weight": w, "bias": np.zeros(cout, np.int64)},
                   attrs={"op": "conv", "shift": 0, "graded_input": graded, "weight_bits": 8, "stride": (1, 1),
                          "padding": (0, 0), "dilation": (1, 1), "groups": 1})


def _neuron(name, src, shape, rng):
    return Process(name, "neuron", [src], shape, params={"vth": rng.integers(3, 30, size=shape)}, attrs=dict(NEURON))


def graph(form, kind="prodmm", seed=0) -> ProcessGraph:
    """input -> conv -> neurons -> conv: the graded operand ``y``; input -> conv -> neurons: spikes ``s``;
    ``m`` = the product (flattened operands), read by neurons ``A``."""
    dyn, spk, out = IDX[form][:3]
    rng = np.random.default_rng(seed)
    nd, ns = math.prod(dyn), math.prod(spk)
    ps = [Process("input", "input", [], (3, 1, 1), attrs={"bits": 8}, static=True),
          _conv1("s0", "input", 3, 5, rng, True), _neuron("n0", "s0", (5, 1, 1), rng),
          _conv1("yc", "n0", 5, nd, rng, False), Process("y", "flatten", ["yc"], dyn),
          _conv1("s1", "input", 3, ns, rng, True), _neuron("n1", "s1", (ns, 1, 1), rng),
          Process("s", "flatten", ["n1"], spk),
          Process("m", kind, [], out, operands=("y", "s"), attrs={"form": form, "heads": HEADS}),
          _neuron("A", "m", out, rng)]
    return ProcessGraph({p.name: p for p in ps}, "A", T=3, input_shape=(3, 1, 1))


def terms(form):
    """Every product compartment in flat order [h, i, j, q]: (n, h, i, j, q, L element, R element)."""
    r, k, c = IDX[form][3]
    L, R = IDX[form][4:]
    n = 0
    for h in range(HEADS):
        for i in range(r):
            for j in range(k):
                for q in range(c):
                    yield n, h, i, j, q, L(h, i, j), R(h, j, q)
                    n += 1


def prodneuron_construction(form, vals):
    """``out`` of the construction from operand values ``vals[name] [rows, cols]`` (ints), by loops."""
    r, _, c = IDX[form][3]
    out = np.zeros((HEADS, r, c), dtype=np.int64)
    exp, vth = 0, 0
    for _, h, i, _j, q, (la, lr, lc), (ra, rr, rc) in terms(form):
        v = (int(vals[la][lr, lc]) * int(vals[ra][rr, rc])) >> exp   # ProdNeuron, fixed point
        if abs(v) > vth:                                                # the graded spike it sends
            out[h, i, q] += v                                           # weight-1 synapse into the reader
    return out


def run(pg, mapping, x, links=None):
    counter = Counter(CountPlan(pg, mapping, links=links), pg.T, x.shape[0])
    return Executor(pg).run(x, hook=counter, keep=True), counter


X = torch.tensor([[[[40.0]], [[90.0]], [[15.0]]], [[[70.0]], [[5.0]], [[120.0]]]])   # 2 images [3, 1, 1]


def _matrix(form, side, vals):
    """The per-head matrices ``L [h, r, k]`` or ``R [h, k, c]`` the index maps select."""
    r, k, c = IDX[form][3]
    pick = IDX[form][4 if side == "L" else 5]
    rows, cols = (r, k) if side == "L" else (k, c)
    out = np.zeros((HEADS, rows, cols), dtype=np.int64)
    for h in range(HEADS):
        for u in range(rows):
            for v in range(cols):
                a, rr, cc = pick(h, u, v)
                out[h, u, v] = vals[a][rr, cc]
    return out


@pytest.mark.parametrize("form", IDX)
def test_every_form_equals_the_construction_and_the_matrix_product(form):
    pg = graph(form)
    result = Executor(pg).run(X, keep=True)
    _, fq = FakeQuantModel(pg).run(X, keep=True)
    got, fq = result.values["m"].numpy(), fq["m"].expand(pg.T, *fq["m"].shape[1:]).numpy()
    r, _, c = IDX[form][3]
    for t in range(pg.T):
        for b in range(X.shape[0]):
            vals = {n: result.values[n][min(t, result.values[n].shape[0] - 1), b].numpy().astype(np.int64)
                    .reshape(IDX[form][0 if n == "y" else 1]) for n in ("y", "s")}
            want = prodneuron_construction(form, vals)
            assert np.array_equal(got[t, b].reshape(HEADS, r, c), want), (t, b)
            assert np.array_equal(fq[t, b].reshape(HEADS, r, c), want), (t, b)
            assert np.array_equal(_matrix(form, "L", vals) @ _matrix(form, "R", vals), want)
    assert result.values["s"].any() and result.values["y"].any() and np.abs(got).sum() > 0


def test_prodmm_computes_what_dsmm_computes():
    a, b = (Executor(graph("y2@a", kind)).run(X, keep=True).values["m"] for kind in ("prodmm", "dsmm"))
    assert torch.equal(a, b)


# -- resources: every core's compartments, sources and synapses enumerated ---------------------------

def _flat(name, row, col, form):
    """Flat index of element (row, col) in operand ``name``'s [rows, cols] shape."""
    return row * IDX[form][0 if name == "y" else 1][1] + col


def brute_core(form, s, e, chip):
    """(compartments, synapse words, input axons, stored synapses) of P compartments [s, e) by enumeration."""
    fan: dict[tuple, int] = {}
    for n, _h, _i, _j, _l, La, Ra in terms(form):
        if s <= n < e:
            for a, row, col in (La, Ra):   # one weight-1 synapse from each operand element
                key = (a, _flat(a, row, col, form))
                fan[key] = fan.get(key, 0) + 1
    words = sum(-(-f // chip.sparse_weights_per_word) for f in fan.values())
    return e - s, words, len(fan), 2 * (e - s)


@pytest.mark.parametrize("form", IDX)
@pytest.mark.parametrize("chunk,per_word", [(1, 1), (5, 1), (7, 3), (13, 2), (24, 1), (1000, 4)])
def test_product_group_costs_equal_a_recount(form, chunk, per_word):
    pg = graph(form)
    chip = dataclasses.replace(load_chip("loihi2"), sparse_weights_per_word=per_word)
    r, k, c = IDX[form][3]
    size = HEADS * r * k * c
    cost = GroupCost(pg, ["m"], size, chip, set())
    got = cost.costs(min(chunk, size))
    for core, s in enumerate(range(0, size, chunk)):
        n, words, axons, syn = brute_core(form, s, min(s + chunk, size), chip)
        assert (int(got.neurons[core]), int(got.axons_in[core]), int(got.synapses[core])) == (n, axons, syn), core
        # memory: 3 words of state (ProdNeuron's v, vth, exp) a compartment, the synapses, 2 words an axon
        assert int(got.words(chip)[core]) == n * 3 + words + 2 * axons, core


@pytest.mark.parametrize("form", ["y1T@s", "kT@v", "qk@v"])
def test_mapping_of_the_product_and_its_reader(form):
    pg = graph(form)
    chip = dataclasses.replace(load_chip("loihi2"), neurons_per_core=10)
    m = map_graph(pg, chip)
    r, k, c = IDX[form][3]
    P, A = m.groups["m"], m.groups["A"]
    assert P.size == HEADS * r * k * c and "yc" not in P.members and P.members == ["m"]
    # the reader's compartment of out[h, i, q] holds one synapse and one axon per term j: k of each;
    # its fullest core (n compartments): n * 3 + n * k words + n * k axons * 2 words
    n = A.chunk
    assert n <= 10 and (A.axons_per_core, A.synapses_per_core, A.words_per_core) == (n * k, n * k, 3 * n + 3 * n * k)
    # fan-out of the P cores: each sends to the reader cores of the outputs of its terms
    want = 0
    for core in range(P.cores):
        dest = {((h * r + i) * c + q) // A.chunk for n, h, i, j, q, _, _ in terms(form) if n // P.chunk == core}
        want = max(want, len(dest))
    assert P.fan_out_per_core == want


# -- events: every delivery, product and message recounted ------------------------------------------

def xy_links(m, a, b):
    """The directed links a message from core ``a`` to core ``b`` crosses, one step at a time: east or west
    first, then south or north; a link is ``(tile y * width + tile x) * 4 + (0 E, 1 W, 2 S, 3 N)``."""
    (ax, ay), (bx, by) = (tuple(int(v) for v in m.core_xy(np.asarray(c))) for c in (a, b))
    width = int(m.core_xy(np.arange(m.cores))[0].max()) + 1
    out = []
    while ax != bx:
        out.append((ay * width + ax) * 4 + (0 if bx > ax else 1))
        ax += 1 if bx > ax else -1
    while ay != by:
        out.append((ay * width + ax) * 4 + (2 if by > ay else 3))
        ay += 1 if by > ay else -1
    return out


def recount(form, pg, m, result):
    """Per core, summed over steps and samples: ac, mac, active, msgs, in_tile, hops_ew, hops_ns, reader ops."""
    P, A = m.groups["m"], m.groups["A"]
    r, c = IDX[form][3][0], IDX[form][3][2]
    out = {k: np.zeros(m.cores) for k in ("ac", "mac", "active", "msgs", "in_tile", "hops_ew", "hops_ns", "dsmm",
                                          "msgs_in")}
    out["links"] = {}   # link id -> the product messages that cross it
    for t in range(pg.T):
        for b in range(X.shape[0]):
            vals = {nm: result.values[nm][min(t, result.values[nm].shape[0] - 1), b].numpy()
                    .reshape(IDX[form][0 if nm == "y" else 1]) for nm in ("y", "s")}
            for n, h, i, _j, q, (la, lr, lc), (ra, rr, rc) in terms(form):
                core = P.first_core + n // P.chunk
                a1, a2 = vals[la][lr, lc], vals[ra][rr, rc]
                for a, v in ((la, a1), (ra, a2)):   # a graded delivery is a MAC, a spike an AC
                    if v != 0:
                        out["mac" if a == "y" else "ac"][core] += 1
                out["active"][core] += (a1 != 0) or (a2 != 0)
                if a1 * a2 != 0:   # a graded spike to the reader's compartment of out[h, i, q]
                    dest = A.first_core + ((h * r + i) * c + q) // A.chunk
                    ew, ns = m.hops(core, dest)
                    out["msgs"][core] += 1
                    out["in_tile"][core] += core == dest
                    out["hops_ew"][core] += ew
                    out["hops_ns"][core] += ns
                    out["mac"][dest] += 1   # the graded product's synaptic op at the reader
                    out["dsmm"][dest] += 1
                    out["msgs_in"][dest] += 1
                    for link in xy_links(m, core, dest):
                        out["links"][link] = out["links"].get(link, 0) + 1
    return out


@pytest.mark.parametrize("form", IDX)
def test_event_counts_equal_an_event_by_event_recount(form):
    pg = graph(form, seed=3)
    m = map_graph(pg, dataclasses.replace(load_chip("loihi2"), neurons_per_core=7))
    result, counter = run(pg, m, X)
    cc = {k: v.sum((0, 1)).numpy() for k, v in counter.counts.core.items()}
    want = recount(form, pg, m, result)
    P, A = m.groups["m"], m.groups["A"]
    for key in ("ac", "mac", "active", "msgs", "in_tile", "hops_ew", "hops_ns"):
        sl = slice(P.first_core, P.first_core + P.cores)
        assert np.array_equal(cc[key][sl], want[key][sl]), key
    sl = slice(A.first_core, A.first_core + A.cores)
    assert np.array_equal(cc["mac"][sl], want["mac"][sl]) and np.array_equal(cc["dsmm"][sl], want["dsmm"][sl])
    mine = slice(P.first_core, P.first_core + P.cores)
    sizes = np.diff(np.minimum(np.arange(P.cores + 1) * P.chunk, P.size))
    assert np.array_equal(cc["active"][mine] + cc["idle"][mine], np.full(P.cores, pg.T * X.shape[0]) * sizes)
    assert want["msgs"].sum() > 0 and want["ac"].sum() > 0
    # the product compartments are one pipeline stage; their reader the next
    plan = counter.plan
    assert plan.delay["A"] == plan.delay["m"] + 1 and plan.delay["m"] == max(plan.delay["yc"], plan.delay["n1"]) + 1


@pytest.mark.parametrize("form", IDX)
def test_product_messages_on_the_links_equal_a_recount(form):
    # the detailed timing model routes every product term's graded spike to its reader over the mesh
    pg = graph(form, seed=3)
    m = map_graph(pg, dataclasses.replace(load_chip("loihi2"), neurons_per_core=7))
    result, counter = run(pg, m, X, links=load_energy_profile("loihi2"))
    want = recount(form, pg, m, result)
    plan = counter.plan
    assert [g for g in plan.groups if plan.delay[g] == plan.delay["m"]] == ["m"]   # the only sender at its delay
    loads = counter.counts.links[plan.delay["m"]][0].sum((0, 1))
    got = {i: v for i, v in enumerate(loads.tolist()) if v}
    assert got == want["links"] and sum(got.values()) > 0
    sl = slice(m.groups["A"].first_core, m.groups["A"].first_core + m.groups["A"].cores)
    assert np.array_equal(counter.counts.core["msgs_in"].sum((0, 1)).numpy()[sl], want["msgs_in"][sl])


@pytest.mark.parametrize("form", ["y1T@s", "qk@v"])
def test_operand_messages_reach_each_product_core_once(form):
    pg = graph(form, seed=5)
    m = map_graph(pg, dataclasses.replace(load_chip("loihi2"), neurons_per_core=5))
    result, counter = run(pg, m, X)
    P = m.groups["m"]
    readers: dict[tuple, set] = {}   # operand element -> the P cores holding a synapse from it
    for n, _h, _i, _j, _l, La, Ra in terms(form):
        for a, row, col in (La, Ra):
            readers.setdefault((a, _flat(a, row, col, form)), set()).add(n // P.chunk)
    for name, group in (("y", "yc"), ("s", "n1")):
        g = m.groups[group]
        v = result.values[name].reshape(result.values[name].shape[0], X.shape[0], -1)
        want = sum(len(readers.get((name, e), ())) * float((v[:, :, e] != 0).sum()) for e in range(v.shape[2]))
        got = float(counter.counts.core["msgs"][:, :, g.first_core:g.first_core + g.cores].sum())
        assert got == want > 0, name


@pytest.mark.parametrize("form", ["y1T@s", "y2@a", "qk@v"])
def test_operand_memory_rewrites_every_held_entry_every_step(form):
    pg = graph(form, kind="dsmm")
    chip = dataclasses.replace(load_chip("loihi2-opmem"), neurons_per_core=7)
    m = map_graph(pg, chip)
    A = m.groups["A"]   # the dsmm sits with its reader, holding the operand entries its outputs read
    assert "m" in A.members
    r, _, c = IDX[form][3]
    held = [set() for _ in range(A.cores)]
    for _n, h, i, _j, q, La, Ra in terms(form):
        out = (h * r + i) * c + q
        for a, row, col in (La, Ra):
            if a == "y":
                held[out // A.chunk].add(_flat(a, row, col, form))
    _, counter = run(pg, m, X)
    got = counter.counts.core["operand_writes"][:, :, A.first_core:A.first_core + A.cores]
    # every step of every sample rewrites each core's entries
    assert torch.equal(got, torch.tensor([float(len(s)) for s in held]).expand(pg.T, X.shape[0], -1))
    totals = {k: float(v.sum()) / X.shape[0] for k, v in counter.counts.core.items()}
    profile = load_energy_profile("loihi")
    assert energy_terms(totals, profile)["operand_write"] == pytest.approx(
        pg.T * sum(len(s) for s in held) * 3.75e-12)   # 3.75 pJ an entry (loihi2.toml's assumption)
    # loihi2 itself has no operand memory: nothing is written (and the lowering never emits dsmm there)
    _, plain = run(pg, map_graph(pg, dataclasses.replace(load_chip("loihi2"), neurons_per_core=7)), X)
    assert float(plain.counts.core["operand_writes"].sum()) == 0


def test_a_chip_without_product_neurons_refuses_prodmm_in_one_line():
    from hw_sim.mapping import MappingError

    with pytest.raises(MappingError, match=r"^loihi1 has no product neurons or graded spikes: the prodmm products "
                                           r"cannot run on it; use loihi2$"):
        map_graph(graph("y1T@s"), load_chip("loihi1"))


@pytest.mark.parametrize("a,b,m", [(0, 5, 7), (3, 7, 7), (5, 9, 7), (6, 13, 7), (12, 40, 7), (0, 7, 7), (7, 8, 1)])
def test_residues_of_a_range_are_numpys_unique(a, b, m):
    """The closed form the product set-up uses against ``np.unique`` of the enumerated residues."""
    from hw_sim.prodneuron import _residues

    assert np.array_equal(_residues(a, b, m), np.unique(np.arange(a, b) % m))


def test_every_cores_operand_runs_at_once_are_the_elements_its_terms_read():
    """:meth:`ProdGeometry.operand_runs` (all cores at once, closed form) against the operand elements of
    each core's terms enumerated from the papers' index maps (:func:`terms`), and against
    :meth:`operand_elements` core by core, on every form (dynamic operand left or right, either
    transposed), with chunks that cut rows, heads and residue ranges anywhere."""
    from hw_sim.prodneuron import ProdGeometry
    from hw_sim.reach_runs import from_indices

    checked = 0
    for form in IDX:
        pg = graph(form)
        geo = ProdGeometry(pg.processes["m"], pg)
        cols = {"y": IDX[form][0][1], "s": IDX[form][1][1]}
        listed = list(terms(form))
        for chunk in (1, 5, geo.c, geo.kc - 1, geo.kc + 3, 2 * geo.r * geo.kc + 7):
            cores = -(-geo.size // chunk)
            every = geo.operand_runs(chunk, cores)
            if every is None:
                assert geo.ports["right"][1]   # only a transposed R goes core by core
                continue
            for side, (operand, core, runs) in enumerate(every):
                want, own = [], []
                for c in range(cores):
                    elems = {t[5 + side] for t in listed[c * chunk:(c + 1) * chunk]}
                    assert {e[0] for e in elems} == {operand}
                    r = from_indices(np.array(sorted(row * cols[operand] + col for _, row, col in elems)))
                    want.append(np.concatenate([np.full((len(r), 1), c), r], 1))
                    idx = geo.operand_elements(c * chunk, min((c + 1) * chunk, geo.size))[side][1]
                    own.append(np.concatenate([np.full((len(r), 1), c), from_indices(np.sort(idx))], 1))
                got = np.concatenate([core[:, None], runs], 1)
                assert np.array_equal(got, np.concatenate(want)) and np.array_equal(got, np.concatenate(own))
                checked += 1
    assert checked > 0
