"""Spikformer through the toolchain: NIR round trip (both layouts), Loihi lowering with the executor
equal to the fake-quant model bit for bit, the SSA products' AC counts against a hand count, and the
float-vs-integer accuracy of a briefly trained nano through the CLI (export, simulate)."""

import json

import nir
import numpy as np
import pytest
import torch
from torch import nn

import sresformer
from exporters.nir import export, load_for_eval
from exporters.quantize.fakequant import FakeQuantModel, dsmm_product
from hw_sim.artifact import read_artifact
from hw_sim.connectivity import CountPlan
from hw_sim.counters import Counter
from hw_sim.executor import Executor
from hw_sim.op_kernels import MatmulOps
from hw_sim.processes import Process, ProcessGraph
from hw_sim.reach import back
from sresformer.spikformer import Spikformer
from testutil import export_small, synapse_ops_by_hand

pytestmark = pytest.mark.usefixtures("one_thread")

NEURON_STUB = {"du": 4096, "dv": 0, "state_bits": 24, "decay_bits": 12}  # an operand placeholder


def firing(model, x):
    """Every BN (2d and 1d) at gamma 2, beta 1.2, then two training forwards: all layers fire."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.weight.fill_(2.0)
                m.bias.fill_(1.2)
        model.train()
        model(x)
        model(x)
    return model.eval()


def spike_rates(model, x) -> dict[str, float]:
    rates = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: rates.__setitem__(n, float(o.mean())))
             for n, m in model.named_modules() if isinstance(m, sresformer.neurons.LIF)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return rates


MODELS = {  # a token-layout nano (2 blocks, 4x4 tokens) and a tiny conv-layout (ImageNet) model (2x2 tokens)
    "token": lambda: sresformer.create_model("spikformer_nano", num_classes=10, img_size=16, T=2),
    "conv": lambda: Spikformer(32, 1, 2, img_size=32, T=2, num_classes=10, layout="conv"),
}
FORMS = {"token": ("q@kT", "qk@v"), "conv": ("kT@v", "q@kv")}


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request, tmp_path_factory):
    """(layout, model, x, path of its .nir)."""
    model = MODELS[request.param]()
    img = model.img_size
    x = torch.rand(4, 3, img, img, generator=torch.Generator().manual_seed(1)) * 2
    firing(model, x)
    path = tmp_path_factory.mktemp(request.param) / "m.nir"
    export(model, path)
    return request.param, model, x, path


def test_nir_round_trip_gives_the_models_logits(exported):
    layout, model, x, path = exported
    rates = spike_rates(model, x)
    assert min(rates.values()) > 0.01, rates   # every LIF fires: a silent layer would prove nothing
    graph = nir.read(path)
    assert graph.metadata["extensions_required"] == "sresformer.dual_spike_matmul,sresformer.max_pool2d"
    attn = graph.nodes["block.0"]
    assert [attn.nodes[f"matmul{i}"].metadata["form"] for i in (1, 2)] == list(FORMS[layout])
    assert np.all(attn.nodes["scale"].scale == 0.125)
    assert np.all(attn.nodes["attn_lif"].v_threshold == np.nextafter(np.float32(0.5), np.float32(0)))
    clf = load_for_eval(path)
    with torch.no_grad():
        got, want = clf.forward_steps(x), model.forward_steps(x)
    # SSA is exact integer arithmetic; only the folded convs round differently (~1e-7 relative);
    # one flipped spike would move the logits by far more than this
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6 * float(want.abs().max()))
    assert float(want.abs().max()) > 0


def test_loihi_executor_equals_fake_quant_bit_for_bit(exported, tmp_path):
    layout, model, x, path = exported
    pg, _, _ = read_artifact(export_small(path, tmp_path / "m.loihi"))
    # loihi2 builds the products from product neurons; a product read as the next one's operand is
    # held by a graded integrator (a sum) fed by its terms
    kinds = {p.attrs.form for p in pg if p.kind == "prodmm"}
    assert kinds == set(FORMS[layout]) and not any(p.kind == "dsmm" for p in pg)
    first = FORMS[layout][0]
    held = [p for p in pg if p.kind == "prodmm" and p.attrs.form == first][0]
    assert held.name.endswith(".terms") and pg.processes[held.name[:-len(".terms")]].kind == "sum"
    attn = pg.processes["block.0.attn_lif"]
    assert attn.params["vth"].tolist() == [8]   # 0.5 / (0.125 * dt/tau) in unit 1: the scale folded exactly
    assert pg.processes["block.0.add"].exponent == 0   # the residual stream holds spike counts in unit 1
    assert pg.processes["block.0.q_conv"].attrs.graded_input   # read from the stream: MAC
    noisy = torch.randn(2, *x.shape[1:], generator=torch.Generator().manual_seed(2)) * 3
    xs = torch.cat([x, noisy])
    res = Executor(pg).run(xs, keep=True)
    ref_logits, ref = FakeQuantModel(pg).run(xs, keep=True)
    assert torch.equal(res.logits.double(), ref_logits.expand(res.logits.shape))
    for name in pg.processes:
        mine = res.values[name].double()
        assert torch.equal(mine, ref[name].expand(mine.shape)), name
    fired = [float(res.values[n].mean()) for n, p in pg.processes.items() if p.kind == "neuron"]
    assert min(fired) > 0.005, fired


def test_counts_of_a_spikformer_artifact(exported, tmp_path):
    """Per-layer AC/MAC against counts computed another way; the products' operand fan-out
    (message tables) against autograd of the product with all-ones operands."""
    layout, model, x, path = exported
    # the operand-memory core runs the products as dsmm: their gated accumulations counted as ACs
    artifact = export_small(path, tmp_path / "m.loihi", chip="loihi2-opmem")
    pg, mapping, _ = read_artifact(artifact)
    counter = Counter(CountPlan(pg, mapping), pg.T, x.shape[0])
    res = Executor(pg).run(x, hook=counter, keep=True)
    layers = counter.counts.layers
    for name, p in pg.processes.items():
        if p.kind == "synapse" and not p.static:
            assert layers[name]["mac" if p.attrs.graded_input else "ac"] == synapse_ops_by_hand(p, res.values), name
        elif p.kind == "dsmm":
            spk = pg.processes[p.operands[1]].out_shape
            d = spk[0] // p.attrs.heads   # each spike gates a row / column of d (K^T V forms) or N entries
            per_spike = {"kT@v": d, "q@kv": d}.get(p.attrs.form, spk[1] * spk[2])
            assert layers[name]["ac"] == float((res.values[p.operands[1]] != 0).sum()) * per_spike, name
            mask = (torch.rand(int(np.prod(p.out_shape))) < 0.3).double()
            ops = {o: torch.ones(1, 1, *pg.processes[o].out_shape, dtype=torch.float64, requires_grad=True)
                   for o in p.operands}
            out = dsmm_product(p, *ops.values())
            (out.flatten() * mask).sum().backward()
            for src, cnt in back(p, pg, mask):
                torch.testing.assert_close(cnt.double(), ops[src].grad.flatten(), rtol=0, atol=0)
    assert float(counter.counts.core["dsmm"].sum()) > 0 and float(counter.counts.core["msgs"].sum()) > 0


def _hand_ops(form, dyn, spk):
    """Ops per output by the definition, loop by loop: out[r, c] = sum_k L[r, k] R[k, c] gets one
    op per k whose spike-operand entry is non-zero (one head)."""
    L, R, spk_left = {"kT@v": (dyn, spk.T, False), "q@kv": (dyn.T, spk, False),
                      "q@kT": (dyn.T, spk, False), "qk@v": (spk, dyn.T, True)}[form]
    rows, k, cols = L.shape[0], L.shape[1], R.shape[1]
    ops = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            for j in range(k):
                ops[r, c] += (L[r, j] if spk_left else R[j, c]) != 0
    return ops, L @ R


@pytest.mark.parametrize("form", ["kT@v", "q@kv", "q@kT", "qk@v"])
def test_ssa_ac_counts_match_a_hand_count(form):
    g = np.random.default_rng(0)
    d, H, W = 3, 1, 4            # one head, d = 3 channels, N = 4 tokens
    n = H * W
    spk = (g.random((d, n)) < 0.5).astype(float)
    dyn_shape = {"kT@v": (d, H, W), "q@kv": (d, d, 1), "q@kT": (d, H, W), "qk@v": (n, H, W)}[form]
    dyn = g.integers(0, 2 if form in ("kT@v", "q@kT") else 5, dyn_shape).astype(float)
    out_shape = {"kT@v": (d, d, 1), "q@kT": (n, H, W)}.get(form, (d, H, W))
    procs = {"dyn": Process("dyn", "sum", [], dyn_shape),
             "spk": Process("spk", "neuron", [], (d, H, W), attrs=NEURON_STUB),
             "mm": Process("mm", "dsmm", [], out_shape, operands=("dyn", "spk"), attrs={"form": form, "heads": 1})}
    pg = ProcessGraph(procs, "mm", 1, (d, H, W))
    want_ops, want_out = _hand_ops(form, dyn.reshape(dyn_shape[0], -1), spk)
    ops = MatmulOps(procs["mm"], pg, 2, int(np.prod(out_shape) + 1) // 2)   # cores of 2 outputs
    got = ops(torch.from_numpy(spk).reshape(1, d, H, W))
    np.testing.assert_array_equal(got.reshape(want_ops.shape).numpy(), want_ops)
    per_core = ops.per_core(torch.from_numpy(spk).reshape(1, d, H, W))
    flat = want_ops.reshape(-1)
    np.testing.assert_array_equal(per_core[0].numpy(), [flat[i:i + 2].sum() for i in range(0, flat.size, 2)])
    # the spec's rule: every spike costs the length of the row / column it gates
    per_spike = {"kT@v": d, "q@kv": d, "q@kT": n, "qk@v": n}[form]
    assert float(got.sum()) == spk.sum() * per_spike
    # both implementations compute the product the definition gives
    vals = {"dyn": torch.from_numpy(dyn)[None], "spk": torch.from_numpy(spk).reshape(1, d, H, W)}
    fq = dsmm_product(procs["mm"], vals["dyn"][None], vals["spk"][None])[0, 0]
    ex = Executor.__new__(Executor)
    ex.pg, ex.plans = pg, {"dyn": _bound(5), "spk": _bound(1)}
    plan = ex._plan_dsmm(procs["mm"])
    out = ex._matmul(procs["mm"], plan, vals["dyn"], vals["spk"])[0]
    np.testing.assert_array_equal(fq.reshape(want_out.shape).numpy(), want_out)
    np.testing.assert_array_equal(out.double().reshape(want_out.shape).numpy(), want_out)


def test_ssa_hand_worked_example():
    # Q^T K for one head, d = 2, N = 2: Q = [[1, 0], [1, 1]], K = [[1, 1], [0, 1]]
    # out[n, m] = sum_i Q[i, n] K[i, m] = [[1, 2], [0, 1]]; K has 1 + 2 spikes in columns 0, 1,
    # each adds a column of Q^T (N = 2 entries): 3 spikes x 2 = 6 AC
    q = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).reshape(2, 1, 2)
    k = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).reshape(2, 1, 2)
    procs = {"q": Process("q", "neuron", [], (2, 1, 2), attrs=NEURON_STUB),
             "k": Process("k", "neuron", [], (2, 1, 2), attrs=NEURON_STUB),
             "mm": Process("mm", "dsmm", [], (2, 1, 2), operands=("q", "k"), attrs={"form": "q@kT", "heads": 1})}
    pg = ProcessGraph(procs, "mm", 1, (2, 1, 2))
    out = dsmm_product(procs["mm"], q[None, None], k[None, None])
    assert out.reshape(2, 2).tolist() == [[1, 2], [0, 1]]
    assert MatmulOps(procs["mm"], pg, 4, 1)(k[None]).reshape(2, 2).tolist() == [[1, 2], [1, 2]]


def _bound(b):
    from hw_sim.executor import Plan
    return Plan(float(b), torch.float32)


def _cli(*args):
    """The CLI in this process (testutil.run_cli_here): the exit status and output are tested, not the process."""
    from testutil import run_cli_here

    return run_cli_here(*args)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A spikformer_nano trained 3 epochs on digits at 16x16, T = 2 (about 15 s)."""
    from sresformer.train.runner import train

    out = tmp_path_factory.mktemp("train")
    train("spikformer_nano", str(out), "digits", epochs=3, img_size=16, T=2, lr=6e-3, batch_size=32, progress=False)
    return out / "best.ckpt"


def test_trained_nano_keeps_its_accuracy_in_integers_and_simulates_bit_exact(trained, tmp_path):
    from exporters.loihi.export import export_loihi

    s = export_loihi(str(trained), tmp_path / "m.loihi", calib_images=32, eval_images=180)
    assert s["accuracy_float"] > 0.5                       # it learned (chance is 0.1)
    assert abs(s["accuracy_drop"]) <= 0.03, s               # the integer model keeps it
    r = _cli("simulate", tmp_path / "m.loihi", "--limit", 16, "--batch-size", 16, "--json")
    assert r.returncode == 0, r.stderr[-800:]
    sim = json.loads(r.stdout)
    assert sim["agreement"] == 1.0 and sim["dsmm_ac"] > 0 and sim["mac"] > 0


def test_cli_exports_a_spikformer_checkpoint(tmp_path):
    model = firing(sresformer.create_model("spikformer_nano", num_classes=10, img_size=16, T=2),
                   torch.rand(4, 3, 16, 16) * 2)
    sresformer.save_checkpoint(model, tmp_path / "s.ckpt")
    r = _cli("export", tmp_path / "s.ckpt", "--target", "nir", "--out", tmp_path / "s.nir")
    assert r.returncode == 0, r.stderr[-800:]
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(load_for_eval(tmp_path / "s.nir")(x), model(x), rtol=0, atol=1e-6)
