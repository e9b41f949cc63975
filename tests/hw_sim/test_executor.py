"""The executor against the fake-quant torch model (an independent implementation of the same
integer semantics): spikes of every neuron process and logits equal bit for bit; layer counts
against counts computed a different way (forward convs of the spike masks, sresformer.sops)."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import sresformer
from exporters.nir.export import export_graph, write_graph
from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.artifact import read_artifact
from hw_sim.chips import load_chip
from hw_sim.counters import Counter, CountPlan
from hw_sim.executor import Executor, exact_dtype
from hw_sim.mapping import map_graph
from hw_sim.processes import Process, ProcessGraph
from sresformer.data import open_dataset
from sresformer.layers import SeqConv2d, SeqLinear
from sresformer.neurons import LIF
from sresformer.sops import conv_fanout_count
from testutil import export_small, lively, lively_nano_artifact, lively_nano_checkpoint, synapse_ops_by_hand

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    # livelier than random init, so deep layers fire and send messages
    return lively_nano_artifact(tmp_path_factory.mktemp("nano"))


@pytest.fixture(scope="module")
def nano_opmem(tmp_path_factory):
    """The same kind of nano on the operand-memory core, where DSSA's products are ``dsmm`` processes
    whose gated accumulations this file recounts by hand (the product compartments of ``loihi2``
    are recounted term by term in tests/hw_sim/test_prodneuron.py)."""
    d = tmp_path_factory.mktemp("nano-opmem")
    return export_small(lively_nano_checkpoint(d), d / "m.loihi", chip="loihi2-opmem")


def check_equal(pg, x):
    """Executor vs fake-quant: logits and every process's values; returns the executor result."""
    res = Executor(pg).run(x, keep=True)
    ref_logits, ref = FakeQuantModel(pg).run(x, keep=True)
    assert torch.equal(res.logits.double(), ref_logits.expand(res.logits.shape))
    for name in pg.processes:
        mine = res.values[name].double()
        assert torch.equal(mine, ref[name].expand(mine.shape)), name
    return res


def test_nano_bit_equal_to_fake_quant(nano):
    pg, _, _ = read_artifact(nano)
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.test[i][0] for i in range(6)])
    g = torch.Generator().manual_seed(3)
    noisy = torch.randn(3, 3, 32, 32, generator=g) * 3            # saturating input pixels
    res = check_equal(pg, torch.cat([x, noisy]))
    rates = [float(res.values[n].mean()) for n, p in pg.processes.items() if p.kind == "neuron"]
    assert sum(r > 0.01 for r in rates) >= len(rates) // 2, rates   # a test on a silent net proves little
    # the logits depend on the input: the 9 inputs (6 digits, 3 noise images) give 9 distinct logit vectors
    assert len({tuple(row) for row in res.logits.sum(0).tolist()}) == 9


def test_dtype_choice_follows_the_bound():
    assert exact_dtype(2 ** 24 - 1) == torch.float32 and exact_dtype(2 ** 24) == torch.float64
    with pytest.raises(OverflowError):
        exact_dtype(2 ** 53)


def test_nano_counts_against_independent_counts(nano_opmem):
    pg, mapping, _ = read_artifact(nano_opmem)
    assert any(p.kind == "dsmm" for p in pg)
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.test[i][0] for i in range(4)])
    counter = Counter(CountPlan(pg, mapping), pg.T, 4)
    res = Executor(pg).run(x, hook=counter, keep=True)
    layers = counter.counts.layers
    for name, p in pg.processes.items():
        if p.kind == "synapse" and not p.static:
            got = layers[name]["mac" if p.attrs.graded_input else "ac"]
            assert got == synapse_ops_by_hand(p, res.values), name
        elif p.kind == "dsmm":
            assert layers[name]["ac"] == dsmm_ops_by_hand(pg, p, res.values), name
    # the per-core totals against the recounts above (not against the counter's own layer sums)
    core = counter.counts.core
    by_hand = {n: synapse_ops_by_hand(p, res.values) for n, p in pg.processes.items() if p.kind == "synapse"}
    dsmm_hand = {n: dsmm_ops_by_hand(pg, p, res.values) for n, p in pg.processes.items() if p.kind == "dsmm"}
    chip_ac = sum(v for n, v in by_hand.items() if not pg.processes[n].static
                  and not pg.processes[n].attrs.graded_input) + sum(dsmm_hand.values())
    assert float(core["ac"].sum()) == chip_ac > 0
    # per core, synapse groups without a matmul: each output's ops land on the core holding it
    checked = 0
    for g in mapping.groups.values():
        syn = [pg.processes[m] for m in g.members if pg.processes[m].kind == "synapse"]
        if not syn or any(pg.processes[m].kind == "dsmm" for m in g.members):
            continue
        want = sum(per_output_ops(p, res.values) for p in syn)            # [T, B, outputs]
        starts = torch.arange(0, g.size, g.chunk)
        per_core = torch.stack([want[..., a:a + g.chunk].sum(-1) for a in starts.tolist()], -1)
        kind = "mac" if syn[0].attrs.graded_input else "ac"
        if all(("mac" if p.attrs.graded_input else "ac") == kind for p in syn):
            others = [k for k in ("ac", "mac") if k != kind]
            assert torch.equal(core[kind][:, :, g.first_core:g.first_core + g.cores], per_core), g.name
            assert float(core[others[0]][:, :, g.first_core:g.first_core + g.cores].sum()) == 0, g.name
            checked += 1
    assert checked >= 3
    assert float(core["spikes"].sum()) == sum(float(res.values[n].sum()) for n, p in pg.processes.items()
                                              if p.kind == "neuron")
    # every compartment of every group is updated once per step, actively or idly (group sizes from
    # the graph's shapes, not from the mapper)
    total = (core["active"] + core["idle"]).sum((0, 2))
    assert torch.all(total == pg.T * sum(int(np.prod(pg.processes[n].out_shape)) for n in mapping.groups))
    # the stem runs once per inference on the embedded processor: its MACs recounted from the pixels
    stem = sum(v for n, v in by_hand.items() if pg.processes[n].static)
    assert float(counter.counts.embedded["mac"].sum()) == stem == by_hand["prologue.0"] > 0


def per_output_ops(p, values) -> torch.Tensor:
    """Synaptic ops of synapse ``p`` per output ``[T, B, outputs]``: torch's conv (or a matmul) of the
    non-zero input mask with the stored-weight mask ``|W| > 0``."""
    import torch.nn.functional as F

    x = sum(values[s] for s in p.sources)
    nz = (x != 0).double()
    T, B = nz.shape[:2]
    w = torch.from_numpy(p.params["weight"] != 0).double()
    a = p.attrs
    if a.op == "conv":
        out = F.conv2d(nz.flatten(0, 1), w, None, a.stride, a.padding, a.dilation, a.groups)
    else:
        out = nz.flatten(0, 1).flatten(1) @ w.T
    return out.reshape(T, B, -1)


def dsmm_ops_by_hand(pg, p, values) -> float:
    """A dual-spike matmul's ops: every spike of the spike operand adds one column of the dynamic
    operand (``y1T@s``: its spatial size; ``y2@a``: the ``d`` channels of a head)."""
    y = pg.processes[p.operands[0]]
    heads = p.attrs.heads
    col = int(np.prod(y.out_shape[1:])) if p.attrs.form == "y1T@s" else y.out_shape[0] // (2 * heads)
    return float((values[p.operands[1]] != 0).sum()) * col


class ToyNet(nn.Module):
    """A third-party style spiking CNN: conv, LIF, strided grouped conv, LIF, flatten, linear."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.c1, self.c2 = SeqConv2d(2, 4, 3, padding=1, bias=False), SeqConv2d(4, 6, 3, 2, 1, groups=2, bias=False)
        self.fc = SeqLinear(6 * 4 * 4, 10)
        with torch.no_grad():   # magnitudes in [0.5, 1]: no mantissa rounds to zero, so every tap is stored
            for m in (self.c1, self.c2, self.fc):
                w = torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5
                m.weight.copy_(w * torch.where(torch.rand(w.shape, generator=g) < 0.3, -1.0, 1.0))
            self.c1.weight.mul_(1.5)

    def chain(self):
        return nn.Sequential(self.c1, LIF(), self.c2, LIF(), nn.Flatten(), self.fc)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    write_graph(export_graph(ToyNet().chain(), (2, 8, 8)), d / "toy.nir")
    return export_small(d / "toy.nir", d / "toy.loihi", calib_data="digits", T=4)


def test_nir_graph_bit_equal_and_sops(toy):
    pg, mapping, _ = read_artifact(toy)
    data = open_dataset("digits", img_size=8, in_channels=2, augment=False)
    x = torch.stack([data.test[i][0] for i in range(8)]) * 2
    res = check_equal(pg, x)
    counter = Counter(CountPlan(pg, mapping), pg.T, 8)
    Executor(pg).run(x, hook=counter)
    convs = [p for p in pg if p.kind == "synapse" and p.attrs.op == "conv" and not p.attrs.graded_input]
    assert convs, "the toy graph lost its spiking conv"
    for p in convs:   # sresformer.sops' fan-out counter on the same spikes (all weights stored)
        spikes = res.values[p.sources[0]].flatten(0, 1)
        conv = nn.Conv2d(spikes.shape[1], p.out_shape[0], p.params["weight"].shape[-1], p.attrs.stride,
                         p.attrs.padding, groups=p.attrs.groups)
        assert counter.counts.layers[p.name]["ac"] == conv_fanout_count(spikes, conv) > 0


def test_ti_at_32_bit_equal(tmp_path):
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(8)])
    model = lively(sresformer.create_model("spikingresformer_ti", img_size=32), x)
    sresformer.save_checkpoint(model, tmp_path / "ti.ckpt")
    pg, mapping, _ = read_artifact(export_small(tmp_path / "ti.ckpt", tmp_path / "ti.loihi"))
    res = check_equal(pg, torch.stack([data.test[i][0] for i in range(3)]))
    assert any(float(res.values[n].mean()) > 0.01 for n, p in pg.processes.items()
               if p.kind == "neuron" and n.startswith("layers.2."))   # the last stage fires too


def test_toy_message_counts_equal_a_recount_event_by_event(toy):
    """Per-core messages and hops on a small chip (the toy graph cut over many cores) against a plain
    recount: every spike goes once to each distinct core holding an output its stored weights reach
    (found by a forward conv of a one-hot input with ``|W| > 0``), in-tile when that is its own core,
    else over the Manhattan distance on the mesh (core ``c`` at ``(c % mesh_cols, c // mesh_cols)``)."""
    import torch.nn.functional as F

    pg, _, _ = read_artifact(toy)
    mesh_cols = 4
    chip = dataclasses.replace(load_chip("loihi2"), name="small", description="toy chip", neurons_per_core=40,
                               mesh_cols=mesh_cols)
    mapping = map_graph(pg, chip)
    assert mapping.chips == 1 and max(g.cores for g in mapping.groups.values()) >= 3
    data = open_dataset("digits", img_size=8, in_channels=2, augment=False)
    x = torch.stack([data.test[i][0] for i in range(3)]) * 2
    counter = Counter(CountPlan(pg, mapping), pg.T, 3)
    res = Executor(pg).run(x, hook=counter, keep=True)
    readers: dict[str, list] = {}   # spiking value -> [(reader synapse, its input shape)]
    for p in pg:
        if p.kind == "synapse" and not p.static:
            src = pg.processes[p.sources[0]]
            spikes = src.sources[0] if src.kind == "flatten" else src.name
            readers.setdefault(spikes, []).append((p, src.out_shape))
    want = {k: torch.zeros(pg.T, 3, mapping.cores, dtype=torch.float64) for k in ("in_tile", "msgs", "ew", "ns")}
    for name, rs in readers.items():
        g = mapping.groups[mapping.placement[name]]
        n = int(np.prod(pg.processes[name].out_shape))
        dests = [set() for _ in range(n)]
        for p, shape in rs:
            h = mapping.groups[mapping.placement[p.name]]
            onehot = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
            w = torch.from_numpy(p.params["weight"] != 0).double()
            a = p.attrs
            reach = (F.conv2d(onehot, w, None, a.stride, a.padding, a.dilation, a.groups).flatten(1)
                     if a.op == "conv" else onehot @ w.T)
            for i, o in torch.nonzero(reach).tolist():
                dests[i].add(h.first_core + o // h.chunk)
        for t, b, i in torch.nonzero(res.values[name].reshape(pg.T, 3, -1)).tolist():
            src = g.first_core + i // g.chunk
            for d in dests[i]:
                want["msgs"][t, b, src] += 1
                want["in_tile"][t, b, src] += d == src
                want["ew"][t, b, src] += abs(src % mesh_cols - d % mesh_cols)
                want["ns"][t, b, src] += abs(src // mesh_cols - d // mesh_cols)
    got = counter.counts.core
    assert want["msgs"].sum() > 0 and want["ew"].sum() > 0 and want["ns"].sum() > 0   # (map_graph never shares a core)
    assert torch.equal(got["msgs"], want["msgs"]) and torch.equal(got["in_tile"], want["in_tile"])
    assert torch.equal(got["hops_ew"], want["ew"]) and torch.equal(got["hops_ns"], want["ns"])
    # the embedded processor sends the stem's non-zero values once, each to the one core of its compartment
    stem = next(p.name for p in pg if p.static and p.kind == "synapse")
    assert counter.counts.embedded["msgs"].tolist() == (res.values[stem][0] != 0).flatten(1).sum(1).tolist()


@pytest.mark.parametrize("fraction", [0.0, 1.01])
def test_nano_live_channel_gather_bit_equal(nano, monkeypatch, fraction):
    """Synapses computed on live input channels only (always / never) stay bit-equal to fake-quant,
    on digits and on an input with silent channels (blank image: most layers see no spikes)."""
    from hw_sim import executor

    monkeypatch.setattr(executor, "LIVE_FRACTION", fraction)
    pg, _, _ = read_artifact(nano)
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.test[i][0] for i in range(2)] + [torch.zeros(3, 32, 32)])
    check_equal(pg, x)
    check_equal(pg, torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("du, dv", [(4096, 2048), (1024, 1024), (0, 2048), (2048, 0), (1000, 3000)])
def test_every_decay_bit_equal(du, dv):
    """Current and voltage decays (none, dyadic, non-dyadic, a current that persists or not) with a
    narrow 12-bit state: the executor's in-place neuron loop equals fake-quant spike for spike."""
    attrs = {"dv": dv, "du": du, "state_bits": 12, "decay_bits": 12}
    w = np.random.default_rng(0).integers(-20, 20, size=(6, 1, 3, 3))
    conv = {"op": "conv", "stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 1, "shift": 0,
            "graded_input": False, "weight_bits": 8}
    procs = [Process("input", "input", [], (1, 8, 8), attrs={"bits": 8}, static=True),
             Process("n0", "neuron", ["input"], (1, 8, 8), params={"vth": np.array([40])}, attrs=attrs),
             Process("conv", "synapse", ["n0"], (6, 8, 8), params={"weight": w, "bias": np.arange(6) - 3},
                     attrs=conv),
             Process("n1", "neuron", ["conv"], (6, 8, 8), params={"vth": np.array([30])}, attrs=attrs)]
    pg = ProcessGraph({p.name: p for p in procs}, "n1", T=6, input_shape=(1, 8, 8))
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 127
    res = Executor(pg).run(x, keep=True)
    _, ref = FakeQuantModel(pg).run(x, keep=True)
    assert 0.05 < float(res.values["n1"].mean()) < 0.95            # both layers fire, neither saturates to 1
    for name in ("n0", "n1"):
        assert torch.equal(res.values[name].double(), ref[name].double().expand_as(res.values[name])), name


def lif_by_hand(inputs, du, dv, vth, bits, decay_bits=12, clamp=True):
    """The CUBA-LIF spec in plain Python integers for one compartment: ``u = decay(u, du) + in``,
    ``v = sat(decay(v, dv) + u)``, spike when ``v >= vth``, then ``v = 0``; the spike train."""
    def decay(x, d):
        mag = (abs(x) * ((1 << decay_bits) - d)) >> decay_bits
        return mag if x >= 0 else -mag

    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    u = v = 0
    out = []
    for x in inputs:
        u = decay(u, du) + x
        v = decay(v, dv) + u
        if clamp:
            v = min(max(v, lo), hi)
        out.append(int(v >= vth))
        if v >= vth:
            v = 0
    return out


@pytest.mark.parametrize("du, dv", [(4096, 0), (4096, 256), (2048, 0)])
def test_membrane_saturation_changes_the_spikes(du, dv):
    """A 12-bit membrane driven far below its range, then up: it saturates at -2048, so it climbs back
    sooner than an unbounded one would. The executor and fake-quant equal the plain-Python reference
    with the clamp, and differ from the one without it (the clamp is exercised, not idle)."""
    bits, n, T = 12, 4, 12
    attrs = {"dv": dv, "du": du, "state_bits": bits, "decay_bits": 12}
    # frames of 8-bit inputs times an identity synapse of weight 8: |u| stays within 12 bits (the current
    # never saturates), the membrane accumulates several steps of it
    drive = [[-127] * 4 + [127] * 8, [-127] * 6 + [100] * 6, [-60] * 3 + [127] * 9, [127] * 12]
    frames = torch.tensor(drive, dtype=torch.float32).T.reshape(T, 1, n)
    dense = {"op": "dense", "shift": 0, "graded_input": True, "weight_bits": 8}
    procs = [Process("input", "input", [], (n,), attrs={"bits": 8}),
             Process("syn", "synapse", ["input"], (n,), params={"weight": 8 * np.eye(n, dtype=np.int64),
                                                              "bias": np.zeros(n, np.int64)}, attrs=dense),
             Process("n", "neuron", ["syn"], (n,), params={"vth": np.array([1500])}, attrs=attrs)]
    pg = ProcessGraph({p.name: p for p in procs}, "n", T=T, input_shape=(n,))
    res = Executor(pg).run(frames, keep=True)
    _, ref = FakeQuantModel(pg).run(frames, keep=True)
    got = res.values["n"][:, 0].T.tolist()
    fq = ref["n"].expand_as(res.values["n"])[:, 0].T.tolist()
    clamped = [lif_by_hand([8 * x for x in row], du, dv, 1500, bits) for row in drive]
    unbounded = [lif_by_hand([8 * x for x in row], du, dv, 1500, bits, clamp=False) for row in drive]
    assert got == clamped and fq == clamped
    assert clamped != unbounded and sum(map(sum, clamped)) > 0
