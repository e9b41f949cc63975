"""``prodmm``: the product-neuron construction of every product form, against references written here.

References (none of them read ``hw_sim/products.py`` or ``hw_sim/prodneuron.py``):

- the construction itself, compartment by compartment: ``P[h, i, j, l]`` applies Lava's
  ``ProdNeuron`` fixed-point rule (``v = (a1 * a2) >> exp``, sent when ``|v| > vth``, here
  ``exp = 0``, ``vth = 0``) to the operand elements the papers' equations name (``IDX`` below)
  and its graded spike is added into ``out[h, i, l]``;
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

# form -> (dyn shape, spk shape, out shape, (r, k, c), L(h, i, j), R(h, j, l)) where L and R give the
# operand ('y' dynamic, 's' spikes) and the (row, col) of the element, from the papers' equations:
# DSSA (Shi et al. 2024) eq. 9: A = y1^T S; eq. 10: O = y2 A; Spikformer SSA (Zhou et al. 2023) eq. 6.
IDX = {
    "y1T@s": ((HEADS * 2 * D, N), (HEADS * D, HW), (HEADS * N, HW), (N, D, HW),
              lambda h, i, j: ("y", h * 2 * D + j, i), lambda h, j, l: ("s", h * D + j, l)),
    "y2@a": ((HEADS * 2 * D, N), (HEADS * N, HW), (HEADS * D, HW), (D, N, HW),
             lambda h, i, j: ("y", h * 2 * D + D + i, j), lambda h, j, l: ("s", h * N + j, l)),
    "kT@v": ((HEADS * D, N), (HEADS * D, N), (HEADS * D, D, 1), (D, N, D),          # K V^T
             lambda h, i, j: ("y", h * D + i, j), lambda h, j, l: ("s", h * D + l, j)),
    "q@kv": ((HEADS * D, D), (HEADS * D, N), (HEADS * D, N), (D, D, N),             # KV^T Q
             lambda h, i, j: ("y", h * D + j, i), lambda h, j, l: ("s", h * D + j, l)),
    "q@kT": ((HEADS * D, N), (HEADS * D, N), (HEADS * N, N), (N, D, N),             # Q^T K
             lambda h, i, j: ("y", h * D + j, i), lambda h, j, l: ("s", h * D + j, l)),
    "qk@v": ((HEADS * N, N), (HEADS * D, N), (HEADS * D, N), (D, N, N),             # V QK^T, V spikes
             lambda h, i, j: ("s", h * D + i, j), lambda h, j, l: ("y", h * N + l, j)),
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
    """Every product compartment in flat order [h, i, j, l]: (n, h, i, j, l, L element, R element)."""
    r, k, c = IDX[form][3]
    L, R = IDX[form][4:]
    n = 0
    for h in range(HEADS):
        for i in range(r):
            for j in range(k):
                for l in range(c):
                    yield n, h, i, j, l, L(h, i, j), R(h, j, l)
                    n += 1


def prodneuron_construction(form, vals):
    """``out`` of the construction from operand values ``vals[name] [rows, cols]`` (ints), by loops."""
    r, k, c = IDX[form][3]
    out = np.zeros((HEADS, r, c), dtype=np.int64)
    exp, vth = 0, 0
    for _, h, i, j, l, (la, lr, lc), (ra, rr, rc) in terms(form):
        v = (int(vals[la][lr, lc]) * int(vals[ra][rr, rc])) >> exp   # ProdNeuron, fixed point
        if abs(v) > vth:                                                # the graded spike it sends
            out[h, i, l] += v                                           # weight-1 synapse into the reader
    return out


def run(pg, mapping, x):
    counter = Counter(CountPlan(pg, mapping), pg.T, x.shape[0])
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
    r, k, c = IDX[form][3]
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
