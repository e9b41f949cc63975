"""The artifact as Lava processes (exporters/lava): refusals, Lava's conventions on hand-worked neurons, and
spike-for-spike agreement with hw_sim's executor on a third-party-style NIR CNN (Lava in a subprocess)."""

import json
import subprocess
import sys

import nir
import numpy as np
import pytest
import torch

from exporters.lava.grid import lava_grid
from exporters.lava.plan import LavaError, plan_graph
from hw_sim.processes import Process, ProcessGraph
from testutil import ROOT


def _needs_lava():
    pytest.importorskip("lava.proc.lif.process", reason="Lava is not installed (bash .ci/install-lava)")


def _ifgraph(vth=129, shift=6, bias=(1, 0, 1), dv=0, T=4) -> ProcessGraph:
    """input [3] -> dense identity synapse -> IF neuron: three hand-worked compartments."""
    procs = [Process("input", "input", [], (3,), attrs={"bits": 8}, static=True),
             Process("syn", "synapse", ["input"], (3,), params={"weight": np.eye(3, dtype=np.int64),
                                                                "bias": np.asarray(bias, np.int64)},
                     attrs={"op": "dense", "shift": shift, "graded_input": True, "weight_bits": 8, "out_bits": 24},
                     static=True),   # it reads only the static input: computed once per image (a stem)
             Process("neu", "neuron", ["syn"], (3,), params={"vth": np.asarray([vth], np.int64)},
                     attrs={"du": 4096, "dv": dv, "state_bits": 24, "decay_bits": 12})]
    return ProcessGraph({p.name: p for p in procs}, "neu", T, (3,))


def _write(pg, path):
    from hw_sim.artifact import write_artifact
    from hw_sim.chips import load_chip
    from hw_sim.mapping import map_graph

    write_artifact(path, pg, map_graph(pg, load_chip("loihi2")), {})
    return path


def _dynamic(pg):
    """``pg`` with its synapse computed every step (as if the input were frames): not a host value."""
    pg.processes["syn"].static = False
    return pg


def test_plan_refuses_what_lava_cannot_reproduce_in_one_line():
    cases = [(_ifgraph(vth=128), r"'neu'.*threshold 128 is not 64 k \+ 1.*--target lava"),
             (_dynamic(_ifgraph(shift=5)), r"'syn'.*shift 5 < 6: Lava floors")]
    # static, the same synapse is computed by the host once per image (the stem's way)
    assert plan_graph(_ifgraph(shift=5))["syn"].lava == "host"
    for pg, pattern in cases:
        with pytest.raises(LavaError, match=pattern) as e:
            plan_graph(pg)
        assert "\n" not in str(e.value)


def test_a_bias_outside_lavas_format_splits_into_an_input_and_a_bias():
    """4097 has no 13-bit mantissa << 0..7: the neuron gets 64 q + r, q = 64 into a_in (a_in << 6) and r = 1 as its
    bias; (0, 1) stay as they are (q = 0)."""
    node = plan_graph(_ifgraph(bias=(4097, 0, 1)))["neu"]
    assert node.params["inject"].tolist() == [64, 0, 0] and node.params["bias_mant"].tolist() == [1, 0, 1]
    p = node.params
    assert ((p["inject"] << 6) + (p["bias_mant"] << p["bias_exp"])).tolist() == [4097, 0, 1]


def test_grid_moves_thresholds_to_the_nearest_64k_plus_1():
    # 128 -> 129 (k = 2), 160 -> 129 (nearest), 161 -> 193 (half up), 1 -> 1
    for old, new in ((128, 129), (160, 129), (161, 193), (1, 1)):
        g = lava_grid(_ifgraph(vth=old))
        assert int(g.processes["neu"].params["vth"][0]) == new
        plan_graph(g)


def test_grid_moves_a_bias_into_lavas_format_and_the_plan_then_takes_it():
    # 4097 has no 13-bit mantissa << 0..7; the nearest that has one: 4096 = 2048 << 1 (of 4096 and 4098, the lower)
    pg = _ifgraph(bias=(4097, 0, 1))
    g = lava_grid(pg)
    assert g.processes["syn"].params["bias"].tolist() == [4096, 0, 1]
    assert pg.processes["syn"].params["bias"].tolist() == [4097, 0, 1]   # a copy: the input is untouched
    node = plan_graph(g)["neu"]
    assert (node.params["bias_mant"] << node.params["bias_exp"]).tolist() == [4096, 0, 1]
    # the residual graph: n2's total is the sum of a's and b's biases (a reaches it through the sum)
    res = _residual_graph()
    total = plan_graph(res)["n2"].params["bias"]
    assert total.tolist() == (res.processes["a"].params["bias"] + res.processes["b"].params["bias"]).tolist()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_lava_neuron_at_threshold_bias_and_synapse_delay(tmp_path):
    """Hand-worked: u = 64 x + bias, IF v += u, spike on v >= 129 (Lava: v > 2 << 6), reset to 0.

    x = (2, 2, 1), bias (1, 0, 1): v0 = 129 at every step (spikes on equality); v1 = 128, 256 (alternate);
    v2 = 65, 130 (alternate). The raw Lava trace lags by the one step Lava's Dense buffers."""
    _needs_lava()
    from exporters.lava.run import run_worker
    from hw_sim.executor import Executor

    pg = _ifgraph()
    want = np.array([[1, 0, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]])   # [T, 3]
    ours = Executor(pg).run(torch.tensor([[2.0, 2.0, 1.0]]), keep=True).values["neu"][:, 0].numpy()
    np.testing.assert_array_equal(ours, want)                # our executor: v >= vth
    lava = run_worker(_write(pg, tmp_path / "if.loihi"), np.array([[2, 2, 1]]), raw=True)
    np.testing.assert_array_equal(lava["neu"][0], want)      # Lava: v > (vth - 1), delay removed
    raw = lava["raw:neu"]                                     # [steps, 3]: Lava's own time axis
    np.testing.assert_array_equal(raw[1:5], want)            # one step late (the synapse's buffer)
    assert not raw[0].any()


def _residual_graph(T=4) -> ProcessGraph:
    """input -> a -> n1 -> b; add = b + a (a residual sum whose sources differ in depth by one synapse);
    n2 reads add, and the output c is a synapse reading add (a graded input, shift 0)."""
    rng = np.random.default_rng(3)

    def syn(name, src, shift, graded, static=False, w=60):
        return Process(name, "synapse", [src], (4,), static=static,
                       params={"weight": rng.integers(-w, w, (4, 4)), "bias": rng.integers(-300, 300, 4)},
                       attrs={"op": "dense", "shift": shift, "graded_input": graded, "weight_bits": 8,
                              "out_bits": 24})

    def neuron(name, src, vth):
        return Process(name, "neuron", [src], (4,), params={"vth": np.asarray([vth], np.int64)},
                       attrs={"du": 4096, "dv": 2048, "state_bits": 24, "decay_bits": 12})

    procs = [Process("input", "input", [], (4,), attrs={"bits": 8}, static=True), syn("a", "input", 6, True, True, w=6),
             neuron("n1", "a", 64 * 20 + 1), syn("b", "n1", 8, False),
             Process("add", "sum", ["b", "a"], (4,), attrs={"out_bits": 24}), neuron("n2", "add", 64 * 4 + 1),
             syn("c", "add", 0, True, w=3)]   # (small weights: c stays inside its 24 bits, no saturation)
    return ProcessGraph({p.name: p for p in procs}, "c", T, (4,))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_lava_residual_sum_with_delay_alignment_agrees(tmp_path):
    """A residual sum in Lava (GradedVec, its shallow source delayed by one identity stage), a neuron and a
    synapse reading it: every spike and the output integers equal our executor's."""
    _needs_lava()
    from exporters.lava.run import compare_lava
    from hw_sim.executor import Executor

    pg = _residual_graph()
    nodes = plan_graph(pg)
    assert nodes["add"].lava == "graded" and nodes["a@+1"].lava == "delay" and nodes["add"].delay == 2
    x = torch.tensor([[9.0, -3.0, 6.0, 2.0], [1.0, 10.0, -5.0, 7.0]])
    add = Executor(pg).run(x, keep=True).values["add"]
    assert (add != add[:1]).any(), "the residual must change over the steps, or a misaligned delay would not show"
    r = compare_lava(_write(pg, tmp_path / "res.loihi"), x)
    assert r["processes"] == 3 and r["spikes"] > 0
    assert r["agreement"] == 1.0 and r["first_mismatch"] is None, r


def _lif(shape, vth):
    """nir's LIF at dt = 1e-4, tau = 2 dt: our LIF with tau 2 (dv = 2048)."""
    return nir.LIF(tau=np.full(shape, 2e-4), r=np.ones(shape), v_leak=np.zeros(shape), v_threshold=np.full(shape, vth))


def _nir_cnn(path):
    """A snntorch-style NIR CNN written with nir's own nodes: conv, LIF, sum pool, conv, LIF, conv, LIF with a
    skip (conv2's output also enters lif3: NIR sums a node's inputs; one synapse shallower), flatten, affine."""
    rng = np.random.default_rng(0)
    lif = _lif

    def conv(cin, cout, hw, std, bias):
        return nir.Conv2d(input_shape=(hw, hw), weight=rng.normal(0, std, (cout, cin, 3, 3)).astype(np.float32),
                          stride=1, padding=1, dilation=1, groups=1, bias=bias.astype(np.float32))

    nodes = {"input": nir.Input(np.array([1, 8, 8])), "conv": conv(1, 4, 8, 0.5, rng.normal(0, 0.1, 4)),
             "lif1": lif((4, 8, 8), 0.5),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "conv2": conv(4, 4, 4, 0.3, rng.normal(0, 0.1, 4)), "lif2": lif((4, 4, 4), 0.5),
             "conv3": conv(4, 4, 4, 0.3, rng.normal(0, 0.1, 4)), "lif3": lif((4, 4, 4), 0.5),
             "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
             "fc": nir.Affine(weight=rng.normal(0, 0.3, (10, 64)).astype(np.float32),
                              bias=rng.normal(0, 0.1, 10).astype(np.float32)),
             "output": nir.Output(np.array([10]))}
    names = list(nodes)
    edges = list(zip(names[:-1], names[1:], strict=True)) + [("conv2", "lif3")]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-4, "T": 4}))
    return path


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_nir_cnn_exports_for_lava_and_agrees_spike_for_spike(tmp_path):
    """export --target lava writes the gridded artifact and a README; simulate --backend lava runs it in Lava's
    fixed-point models (the skip into lif3 through a delay stage): every neuron's spikes at every step and the
    logits equal our executor's."""
    _needs_lava()
    src = _nir_cnn(tmp_path / "cnn.nir")
    r = _cli("export", src, "--target", "lava", "--out", tmp_path / "lava", "--json", "--calib-images", 16,
             "--eval-images", 16)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "lava").iterdir()) == ["README.md", "model.loihi"]
    assert "--backend lava" in (tmp_path / "lava" / "README.md").read_text()
    r = _cli("simulate", tmp_path / "lava" / "model.loihi", "--backend", "lava", "--limit", 2, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert s["samples"] == 2 and s["processes"] == 4   # lif1, lif2, lif3 and the logits of fc
    assert s["spikes"] > 0, "a silent model would agree trivially"
    assert s["agreement"] == 1.0 and s["first_mismatch"] is None


def test_export_refuses_a_graph_lava_cannot_reproduce_in_one_line(tmp_path):
    """Two spike trains summed into one conv (a sum of spikes) has no exact Lava graph yet: export
    --target lava says which process and why, exits 2 and writes nothing."""
    rng = np.random.default_rng(0)
    nodes = {"input": nir.Input(np.array([1, 4, 4])),
             "a": nir.Conv2d(input_shape=(4, 4), weight=rng.normal(0, 1, (2, 1, 3, 3)).astype(np.float32), stride=1,
                             padding=1, dilation=1, groups=1, bias=np.zeros(2, np.float32)),
             "l1": _lif((2, 4, 4), 0.5), "l2": _lif((2, 4, 4), 0.7),
             "b": nir.Conv2d(input_shape=(4, 4), weight=rng.normal(0, 1, (2, 2, 3, 3)).astype(np.float32), stride=1,
                             padding=1, dilation=1, groups=1, bias=np.zeros(2, np.float32)),
             "l3": _lif((2, 4, 4), 0.5),
             "flat": nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=0, end_dim=-1),
             "fc": nir.Affine(weight=rng.normal(0, 1, (10, 32)).astype(np.float32), bias=np.zeros(10, np.float32)),
             "output": nir.Output(np.array([10]))}
    edges = [("input", "a"), ("a", "l1"), ("a", "l2"), ("l1", "b"), ("l2", "b"), ("b", "l3"), ("l3", "flat"),
             ("flat", "fc"), ("fc", "output")]
    nir.write(tmp_path / "m.nir", nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-4, "T": 2}))
    r = _cli("export", tmp_path / "m.nir", "--target", "lava", "--out", tmp_path / "lava", "--calib-data",
             "synthetic", "--calib-images", 4, "--eval-images", 4)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and r.stdout == "" and len(lines) == 1, r.stderr[-2000:]
    assert "Lava cannot reproduce process" in lines[0] and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nir"]   # no DIR, no staging directory left


def test_missing_lava_is_one_line(tmp_path, monkeypatch):
    """With lava-nc not importable, simulate --backend lava says so in one line and exits 2."""
    from click.testing import CliRunner

    from cli.main import cli

    monkeypatch.setitem(sys.modules, "lava.proc.lif.process", None)   # import now raises ImportError
    path = _write(_ifgraph(), tmp_path / "if.loihi")
    r = CliRunner().invoke(cli, ["simulate", str(path), "--backend", "lava"])
    assert r.exit_code == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Lava is not installed" in lines[0] and ".ci/install-lava" in lines[0]


BOOM = """
import sys
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class Boom(AbstractProcess):
    def __init__(self):
        super().__init__()
        self.s_out = OutPort(shape=(1,))


@implements(proc=Boom, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBoom(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def run_spk(self):
        if self.time_step == 2:
            raise ValueError("boom at step 2")
        self.s_out.send(np.zeros(1, np.int32))


if __name__ == "__main__":
    from exporters.lava.worker import run_steps
    sys.exit(run_steps(Boom(), 3))
"""


@pytest.mark.timeout(120)
def test_a_failing_lava_model_surfaces_its_exception_in_one_line(tmp_path):
    """Lava itself only says "1 Exception(s) occurred. See output above" (and logs the traceback at INFO): the
    worker reads the actor's exception, prints its last line, and the group of processes is ended."""
    _needs_lava()
    import os

    from exporters.lava.run import ROOT as LAVA_ROOT
    from exporters.lava.run import run_isolated

    (tmp_path / "boom.py").write_text(BOOM)   # Lava finds a process model beside its process's source file
    env = {**os.environ, "PYTHONPATH": str(LAVA_ROOT)}
    code, err = run_isolated([sys.executable, str(tmp_path / "boom.py")], env, str(tmp_path / "err.txt"), 90)
    lines = [ln for ln in err.splitlines() if ln.startswith("Lava run failed")]
    assert code == 1 and lines == ["Lava run failed: ValueError: boom at step 2"], err[-2000:]


def _dssa_graph(T=4) -> ProcessGraph:
    """DSSA's two products on [C, H, W] = [2, 1, 2] maps (heads 1, d = 2, N = 2 tokens): input -> stem (static conv)
    -> s (IF spikes) -> W (conv to 2d = 4 channels, biases multiples of 64) -> mm1 = y[:d]^T @ s -> attn (IF)
    -> mm2 = y[d:] @ attn, flat (the output: a product Lava sums from its ProdNeurons)."""
    conv = {"op": "conv", "weight_bits": 8, "out_bits": 24, "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1),
            "groups": 1}

    def neuron(name, src, vth):
        return Process(name, "neuron", [src], (2, 1, 2), params={"vth": np.asarray([vth], np.int64)},
                       attrs={"du": 4096, "dv": 0, "state_bits": 24, "decay_bits": 12})

    procs = [Process("input", "input", [], (2, 1, 2), attrs={"bits": 8}, static=True),
             Process("stem", "synapse", ["input"], (2, 1, 2), static=True,
                     params={"weight": np.array([[1, 0], [0, 1]]).reshape(2, 2, 1, 1), "bias": np.zeros(2, np.int64)},
                     attrs={**conv, "shift": 6, "graded_input": True}),
             neuron("s", "stem", 64 * 4 + 1),
             Process("W", "synapse", ["s"], (4, 1, 2),
                     params={"weight": np.array([[3, -1], [2, 5], [-4, 1], [1, 2]]).reshape(4, 2, 1, 1),
                             "bias": np.array([64, -128, 192, 0])}, attrs={**conv, "shift": 8, "graded_input": False}),
             Process("mm1", "prodmm", [], (2, 1, 2), operands=["W", "s"], attrs={"form": "y1T@s", "heads": 1,
                                                                                 "out_bits": 24}),
             neuron("attn", "mm1", 64 * 10 + 1),
             Process("mm2", "prodmm", [], (2, 1, 2), operands=["W", "attn"], attrs={"form": "y2@a", "heads": 1,
                                                                                    "out_bits": 24}),
             Process("out", "flatten", ["mm2"], (4,))]
    return ProcessGraph({p.name: p for p in procs}, "out", T, (2, 1, 2))


def _dssa_by_hand(s: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two products written out: y[k, n] = 256 sum_j W[k, j] s[j, n] + b[k] (shift 8);
    mm1[n, c] = sum_{k < 2} y[k, n] s[k, c]; mm2[i, c] = sum_n y[2 + i, n] a[n, c] (one step, [2, 2] maps)."""
    W, b = np.array([[3, -1], [2, 5], [-4, 1], [1, 2]]), np.array([64, -128, 192, 0])
    y = np.array([[256 * sum(W[k, j] * s[j, n] for j in range(2)) + b[k] for n in range(2)] for k in range(4)])
    mm1 = np.array([[sum(y[k, n] * s[k, c] for k in range(2)) for c in range(2)] for n in range(2)])
    mm2 = np.array([[sum(y[2 + i, n] * a[n, c] for n in range(2)) for c in range(2)] for i in range(2)])
    return mm1, mm2


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_lava_products_agree_with_a_hand_worked_example_and_the_executor(tmp_path):
    """DSSA's products as Lava ProdNeurons (the operand's bias a multiple of 64, through a constant source):
    our executor's products equal the hand-worked sums, and Lava's spikes and output integers equal ours."""
    _needs_lava()
    from exporters.lava.run import compare_lava
    from hw_sim.executor import Executor

    pg = _dssa_graph()
    x = torch.tensor([[[[2.0, 9.0]], [[7.0, 3.0]]], [[[8.0, 1.0]], [[4.0, 12.0]]]])
    v = Executor(pg).run(x, keep=True).values
    for t in range(pg.T):
        for i in range(x.shape[0]):
            s, a = (v[k][t, i].reshape(2, 2).numpy() for k in ("s", "attn"))
            mm1, mm2 = _dssa_by_hand(s, a)
            np.testing.assert_array_equal(v["mm1"][t, i].reshape(2, 2).numpy(), mm1)
            np.testing.assert_array_equal(v["mm2"][t, i].reshape(2, 2).numpy(), mm2)
    assert v["s"].float().mean() not in (0.0, 1.0) and v["attn"].sum() > 0 and (v["mm2"] != 0).any()
    r = compare_lava(_write(pg, tmp_path / "dssa.loihi"), x)
    assert r["processes"] == 3 and r["spikes"] > 0
    assert r["agreement"] == 1.0 and r["first_mismatch"] is None, r


def test_a_products_operand_bias_off_the_64_grid_is_refused_and_the_grid_rounds_it():
    """A dynamic operand's bias times the spikes reaches Lava's neuron only in steps of 64: 65 is refused in one
    line; lava_grid rounds it to 64 (nearest, half up: 96 -> 128, -32 -> 0) and the plan then takes it."""
    pg = _dssa_graph()
    pg.processes["W"].params["bias"] = np.array([65, -128, 96, -32])
    with pytest.raises(LavaError, match=r"'mm1' \(prodmm\).*not a multiple of 64") as e:
        plan_graph(pg)
    assert "\n" not in str(e.value)
    g = lava_grid(pg)
    assert g.processes["W"].params["bias"].tolist() == [64, -128, 128, 0]
    assert plan_graph(g)["mm2"].lava == "prodmm"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_spikingresformer_nano_runs_in_lava_spike_for_spike(tmp_path):
    """Issue 16: a firing (untrained, warmed-up) nano SpikingResformer exported with --target lava, then
    'simulate --backend lava --limit 2' on digits: its stem on the host (per-image biases, written as each image
    reaches each neuron: the two images are pipelined in one Lava run), its DSSA products as ProdNeurons, per-head
    thresholds (LIFResetVth), the classifier's rounding by the host, every neuron's spikes and the logits equal
    to our executor's on both images."""
    _needs_lava()
    from testutil import lively_nano_checkpoint

    ckpt = lively_nano_checkpoint(tmp_path, seed=0)
    r = _cli("export", ckpt, "--target", "lava", "--out", tmp_path / "lava", "--calib-images", 16, "--eval-images", 8)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _cli("simulate", tmp_path / "lava" / "model.loihi", "--backend", "lava", "--limit", 2, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert s["samples"] == 2 and s["processes"] == 21   # 20 neuron layers and the logits
    assert s["spikes"] > 0, "a silent model would agree trivially"
    assert s["agreement"] == 1.0 and s["first_mismatch"] is None, s
