"""Crafted ``.loihi`` artifacts: one field mutated at a time, every one refused in one line or run correctly.

One small valid artifact holding every process kind (input, conv and dense synapses, both
neuron decays, a random spike gate, both DSSA matmul forms, an alias and a residual sum,
MA attention gates, max- and sum-pooling, a flatten) is written once by the real writer;
each case copies it, changes ONE thing with h5py (a root attribute, a process attribute, a
kind's attrs key, a params dataset's shape / dtype / values, a mapping field; or truncates
or replaces the file), and runs ``sresformer simulate`` and ``sresformer energy`` on it in
one capped worker (``testutil.run_cases``). The contract: exit 2 with one line on stderr and
no traceback, or exit 0 where the mutation leaves a valid artifact; never a hang or a
memory balloon.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

import testutil
from hw_sim.artifact import ArtifactError, read_artifact, write_artifact
from hw_sim.attngate import gate_params
from hw_sim.chips import load_chip
from hw_sim.mapping import map_graph
from hw_sim.processes import Process, ProcessGraph

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_graph() -> ProcessGraph:
    """Every process kind on an 8x8 one-channel image (the digits data), T = 3."""
    rng = np.random.default_rng(0)
    w = lambda *s: rng.integers(-40, 41, s).astype(np.int64)  # noqa: E731
    meta = {"gates": "cs", "ca_w1": rng.normal(size=(2, 4)), "ca_w2": rng.normal(size=(4, 2)),
            "ca_bias": rng.normal(size=4), "sa_weight": rng.normal(size=(1, 2, 3, 3)), "sa_bias": rng.normal(size=1)}
    gp, ga = gate_params(meta, (4, 4, 4), 1.0)
    conv = lambda s, p: {"op": "conv", "stride": (s, s), "padding": (p, p), "dilation": (1, 1), "groups": 1,  # noqa
                         "weight_bits": 8, "out_bits": 24}
    procs = [
        Process("input", "input", [], (1, 8, 8), attrs={"bits": 8}, exponent=-4, static=True),
        Process("c1", "synapse", ["input"], (4, 8, 8), params={"weight": w(4, 1, 3, 3), "bias": w(4)},
                attrs={**conv(1, 1), "shift": 0, "graded_input": True}, exponent=-4, static=True),
        Process("mp", "maxpool", ["c1"], (4, 4, 4), attrs={"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0)},
                exponent=-4, static=True),
        Process("n1", "neuron", ["mp"], (4, 4, 4), params={"vth": np.array([30])},
                attrs={"dv": 1024, "du": 4096, "state_bits": 24, "decay_bits": 12}),
        Process("g1", "gate", ["n1"], (4, 4, 4), attrs={"ratio": 0.25, "seed": 3, "gate_id": 1}),
        Process("c2", "synapse", ["g1"], (8, 2, 2), params={"weight": w(8, 4, 2, 2), "bias": w(8)},
                attrs={**conv(2, 0), "shift": 0, "graded_input": False}),
        # loihi2 builds the products from product neurons (prodmm); each is summed by a neuron or a sum
        Process("m1", "prodmm", [], (4, 4, 4), operands=("c2", "g1"),
                attrs={"form": "y1T@s", "heads": 1, "out_bits": 24}),
        Process("a1", "sum", ["m1"], (4, 4, 4), attrs={"alias": True, "out_bits": 24}),
        Process("n2", "neuron", ["a1"], (4, 4, 4), params={"vth": rng.integers(20, 200, (4, 4, 4))},
                attrs={"dv": 2048, "du": 2048, "state_bits": 24, "decay_bits": 12}),
        Process("m2", "prodmm", [], (4, 4, 4), operands=("c2", "n2"),
                attrs={"form": "y2@a", "heads": 1, "out_bits": 24}),
        Process("r1", "sum", ["m2", "mp"], (4, 4, 4), attrs={"alias": False, "out_bits": 24},
                scale=np.full((4, 4, 4), 0.5)),
        Process("ag", "attngate", ["r1"], (4, 4, 4), params=gp, attrs=ga),
        Process("sp", "sumpool", ["ag"], (4, 2, 2), attrs={"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0),
                                                         "out_bits": 24}),
        Process("fl", "flatten", ["sp"], (16,)),
        Process("fc", "synapse", ["fl"], (10,), params={"weight": w(10, 16), "bias": w(10)},
                attrs={"op": "dense", "shift": -2, "graded_input": True, "weight_bits": 8, "out_bits": 24},
                exponent=-6, scale=0.75),
    ]
    return ProcessGraph({p.name: p for p in procs}, "fc", T=3, input_shape=(1, 8, 8),
                        metadata={"model": "tiny"})


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    pg = tiny_graph()
    path = tmp_path_factory.mktemp("crafted") / "valid.loihi"
    write_artifact(path, pg, map_graph(pg, load_chip("loihi2")), {"note": "crafted-input test"})
    return path, [p.name for p in pg]


# -- mutations: each takes the open file (r+) and changes one thing ------------------------------------

def _proc(f, name):
    order = json.loads(f.attrs["order"])
    return f["processes"][f"{order.index(name):04d}"]


def root(key, value=None, delete=False):
    def m(f):
        if delete:
            del f.attrs[key]
        else:
            f.attrs[key] = value
    return m


def pattr(name, key, value=None, delete=False):
    def m(f):
        g = _proc(f, name)
        if delete:
            del g.attrs[key]
        else:
            g.attrs[key] = value
    return m


def kattr(name, key, value=None, delete=False, raw=None):
    """Change one key of a process's JSON ``attrs`` (``raw``: the whole attribute string)."""
    def m(f):
        g = _proc(f, name)
        if raw is not None:
            g.attrs["attrs"] = raw
            return
        a = json.loads(g.attrs["attrs"])
        if delete:
            del a[key]
        else:
            a[key] = value
        g.attrs["attrs"] = json.dumps(a)   # NaN is written as the JSON-invalid token NaN
    return m


def param(name, key, value=None, delete=False, bomb=False, scale=False):
    def m(f):
        g = _proc(f, name)
        path = "scale" if scale else f"params/{key}"
        if path in g:
            del g[path]
        if bomb:   # a declared size no machine holds; no data stored (chunked, all fill value)
            g.create_dataset(path, shape=(1 << 22, 1 << 22), dtype="int64", chunks=(1, 1024), compression="gzip")
        elif not delete:
            g.create_dataset(path, data=value)
    return m


def weight_edit(name, key, fn):
    def m(f):
        g = _proc(f, name)
        v = fn(g[f"params/{key}"][()])
        del g[f"params/{key}"]
        g.create_dataset(f"params/{key}", data=v)
    return m


def mapattr(key, value=None, delete=False, edit=None):
    def m(f):
        a = f["mapping"].attrs
        if delete:
            del a[key]
        elif edit is not None:
            v = json.loads(a[key])
            edit(v)
            a[key] = json.dumps(v)
        else:
            a[key] = value
    return m


def group_field(index, key, value):
    def edit(groups):
        groups[index][key] = value
    return mapattr("groups", edit=edit)


def chip_field(key, value=None, delete=False):
    def edit(chip):
        if delete:
            del chip[key]
        else:
            chip[key] = value
    return mapattr("chip", edit=edit)


def node(fn):
    """A structural edit of the file itself."""
    return fn


NAN = float("nan")
BAD, ANY, OK = "refuse", "any", "ok"


def cases():
    """``(name, mutation, expect)``: expect 'refuse' (exit 2), 'ok' (exit 0) or 'any' (either, in contract)."""
    c = [("unchanged", None, OK)]
    # root attributes
    c += [(f"T={v!r}", root("T", v), BAD) for v in (0, -1, 10 ** 9, 2.5, "4", np.array([3, 3]), True)]
    c += [("T=5", root("T", 5), OK)]
    c += [("version missing", root("version", delete=True), BAD), ("version str", root("version", "1"), BAD),
          ("version 6", root("version", 6), BAD), ("version 0", root("version", 0), BAD),
          ("version 2 with out_bits", root("version", 2), BAD),
          ("version float", root("version", 1.0), BAD), ("format missing", root("format", delete=True), BAD),
          ("format other", root("format", "other"), BAD), ("format bytes array", root("format", np.array([1, 2])), BAD)]
    c += [(f"input_shape {v}", root("input_shape", np.array(v, dtype=np.int64)), BAD)
          for v in ([1, 8, 9], [], [1, 10 ** 6, 10 ** 6], [1, -8, 8], [[1, 8, 8]])]
    c += [("input_static str", root("input_static", "yes"), BAD),
          ("input_static false", root("input_static", False), BAD),
          ("output unknown", root("output", "nope"), BAD), ("output input", root("output", "input"), BAD),
          ("output int", root("output", 3), BAD), ("output n2", root("output", "n2"), BAD),
          ("output fl", root("output", "fl"), ANY),
          ("T missing", root("T", delete=True), BAD), ("unknown root attr", root("extra", 1), BAD)]
    c += [("order shuffled", root("order", json.dumps(["c1", "input"])), BAD),
          ("order not json", root("order", "[input"), BAD), ("order dict", root("order", "{}"), BAD),
          ("metadata not json", root("metadata", "nope"), BAD), ("metadata list", root("metadata", "[1]"), BAD),
          ("metadata NaN", root("metadata", '{"dt": NaN}'), BAD), ("report not json", root("report", "{"), BAD),
          ("report deep", root("report", "[" * 100000 + "]" * 100000), BAD)]
    # process attributes
    c += [("name duplicate", pattr("n2", "name", "n1"), BAD), ("name empty", pattr("n1", "name", ""), BAD),
          ("name newline", pattr("n1", "name", "a\nb"), BAD), ("kind unknown", pattr("n1", "kind", "bogus"), BAD),
          ("kind neuron->sum", pattr("n1", "kind", "sum"), BAD),
          ("kind missing", pattr("n1", "kind", delete=True), BAD),
          ("source missing", pattr("n1", "sources", '["nope"]'), BAD),
          ("source cycle", pattr("n1", "sources", '["n2"]'), BAD),
          ("source self", pattr("n1", "sources", '["n1"]'), BAD),
          ("sources not json", pattr("n1", "sources", "n1"), BAD), ("sources dict", pattr("n1", "sources", "{}"), BAD),
          ("sources none", pattr("n1", "sources", "[]"), BAD),
          ("residual drops a source", pattr("r1", "sources", '["m2"]'), ANY),
          ("operands one", pattr("m1", "operands", '["c2"]'), BAD),
          ("operands unknown", pattr("m1", "operands", '["c2", "zz"]'), BAD),
          ("operands on neuron", pattr("n1", "operands", '["mp", "mp"]'), BAD),
          ("operands swapped", pattr("m1", "operands", '["g1", "c2"]'), BAD)]
    c += [(f"out_shape {v}", pattr("n1", "out_shape", np.array(v)), BAD)
          for v in ([4, 4, 5], [10 ** 6, 10 ** 6, 1], [4, -4, 4], [4, 0, 4], [4.0, 4.0, 4.0], [[4, 4, 4]])]
    c += [("fc out_shape 11", pattr("fc", "out_shape", np.array([11])), BAD),
          ("exponent huge", pattr("fc", "exponent", 10 ** 6), BAD),
          ("exponent float", pattr("fc", "exponent", 1.5), BAD),
          ("exponent 3", pattr("fc", "exponent", 3), OK), ("static neuron", pattr("n1", "static", True), BAD),
          ("static stem off", pattr("c1", "static", False), BAD), ("static str", pattr("c1", "static", "x"), BAD),
          ("unknown process attr", pattr("n1", "extra", 1), BAD), ("attrs not json", kattr("n1", None, raw="{"), BAD),
          ("attrs list", kattr("n1", None, raw="[]"), BAD)]
    # attrs per kind
    c += [(f"input bits {v!r}", kattr("input", "bits", v), BAD) for v in (0, 64, "8", None)]
    c += [("input unknown key", kattr("input", "zz", 1), BAD)]
    conv_bad = {"stride": ([0, 0], [-1, -1], [1, 1], "2", [2, 2, 2]), "padding": ([-1, -1], [1, 1]),
                "dilation": ([0, 0],), "groups": (0, 3, 2, 1.0), "shift": (10 ** 6, -(10 ** 6), 60, 2.5),
                "graded_input": ("yes",), "op": ("fft", "dense")}
    c += [(f"conv {k}={v!r}", kattr("c2", k, v), BAD) for k, vs in conv_bad.items() for v in vs]
    c += [("conv stride missing", kattr("c2", "stride", delete=True), BAD),
          ("conv unknown key", kattr("c2", "kernel", 3), BAD),
          ("conv shift 40", kattr("c2", "shift", 40), ANY), ("dense op conv", kattr("fc", "op", "conv"), BAD),
          ("dense shift -3", kattr("fc", "shift", -3), OK), ("dense shift -60", kattr("fc", "shift", -60), BAD)]
    c += [(f"neuron {k}={v!r}", kattr("n1", k, v), BAD)
          for k, v in (("dv", -1), ("dv", 5000), ("du", NAN), ("state_bits", 64), ("state_bits", 0), ("dv", 2048.5))]
    # out_bits: every graded kind's, an integer 2..the chip's state_bits (24); none on the other kinds
    c += [(f"out_bits {name} {v!r}", kattr(name, "out_bits", v), BAD)
          for name, v in (("c1", None), ("c1", 0), ("c1", 1), ("c2", 25), ("fc", 64), ("m1", "24"), ("r1", 2.5),
                          ("sp", True), ("a1", -24))]
    c += [(f"out_bits {name} missing", kattr(name, "out_bits", delete=True), BAD) for name in ("c1", "m2", "sp")]
    c += [(f"out_bits on {name}", kattr(name, "out_bits", 24), BAD) for name in ("mp", "n1", "g1", "fl", "ag")]
    c += [("out_bits fc 8", kattr("fc", "out_bits", 8), OK), ("out_bits r1 2", kattr("r1", "out_bits", 2), OK)]
    c += [("neuron du 0", kattr("n1", "du", 0), OK), ("neuron dv missing", kattr("n1", "dv", delete=True), BAD),
          ("sum alias str", kattr("a1", "alias", "no"), BAD), ("sum alias off", kattr("a1", "alias", False), BAD),
          ("dsmm form bogus", kattr("m1", "form", "bogus"), BAD), ("dsmm heads 0", kattr("m1", "heads", 0), BAD),
          ("dsmm heads 3", kattr("m1", "heads", 3), BAD), ("dsmm form swap", kattr("m1", "form", "y2@a"), ANY),
          ("dsmm ssa form", kattr("m1", "form", "q@kT"), BAD),
          # the chip must have what the product kind needs: operand memory for dsmm, product neurons for prodmm
          ("prodmm as dsmm on loihi2", pattr("m1", "kind", "dsmm"), BAD),
          ("prodmm on a chip without product neurons", chip_field("product_neurons", False), BAD),
          ("prodmm on a chip without graded spikes", chip_field("graded_spike_bits", 0), BAD),
          ("chip product_neurons str", chip_field("product_neurons", "yes"), BAD),
          ("chip dynamic_operand_memory 1", chip_field("dynamic_operand_memory", 1), BAD)]
    c += [(f"maxpool {k}={v!r}", kattr("mp", k, v), BAD)
          for k, v in (("kernel", [0, 0]), ("stride", [0, 0]), ("padding", [5, 5]), ("kernel", [3, 3]))]
    c += [(f"sumpool {k}={v!r}", kattr("sp", k, v), BAD) for k, v in (("kernel", [-2, 2]), ("stride", [2, 10 ** 9]))]
    c += [("flatten attr", kattr("fl", "zz", 1), BAD), ("attngate gates x", kattr("ag", "gates", "x"), BAD),
          ("attngate gates c", kattr("ag", "gates", "c"), BAD),
          ("attngate frac_bits", kattr("ag", "frac_bits", 100), BAD),
          ("attngate sa_shift", kattr("ag", "sa_shift", 10 ** 5), BAD),
          ("attngate ca_shift2 missing", kattr("ag", "ca_shift2", delete=True), BAD),
          ("attngate ca_shift1_avg 50", kattr("ag", "ca_shift1_avg", 50), BAD),
          ("gate ratio 1.5", kattr("g1", "ratio", 1.5), BAD), ("gate ratio NaN", kattr("g1", "ratio", NAN), BAD),
          ("gate seed str", kattr("g1", "seed", "a"), BAD), ("gate seed 2**70", kattr("g1", "seed", 2 ** 70), BAD),
          ("gate ratio 0.5", kattr("g1", "ratio", 0.5), OK), ("gate gate_id float", kattr("g1", "gate_id", 1.5), BAD),
          ("gate seed missing", kattr("g1", "seed", delete=True), BAD),
          ("sumpool padding 3", kattr("sp", "padding", [3, 3]), BAD),
          ("attngate lut_frac_bits 9", kattr("ag", "lut_frac_bits", 9), BAD),
          ("attngate gate_bits -1", kattr("ag", "gate_bits", -1), BAD),
          ("attngate ca_shift1_max str", kattr("ag", "ca_shift1_max", "1"), BAD),
          ("dense graded_input 1", kattr("fc", "graded_input", 1), BAD),
          ("dense unknown key", kattr("fc", "groups", 1), BAD)]
    # params datasets
    c += [("conv weight shape", param("c2", "weight", np.zeros((8, 4, 3, 3), np.int64)), BAD),
          ("conv weight float", weight_edit("c2", "weight", lambda v: v.astype(np.float64)), BAD),
          ("conv weight NaN", weight_edit("c2", "weight", lambda v: np.where(v > 10, NAN, v)), BAD),
          ("conv weight 1000", weight_edit("c2", "weight", lambda v: v * 1000), BAD),
          ("conv weight bomb", param("c2", "weight", bomb=True), BAD),
          ("conv weight missing", param("c2", "weight", delete=True), BAD),
          ("conv bias missing", param("c2", "bias", delete=True), BAD),
          ("conv bias shape", param("c2", "bias", np.zeros(7, np.int64)), BAD),
          ("conv bias 2**60", weight_edit("c2", "bias", lambda v: v + 2 ** 60), BAD),
          # the chip's formats (loihi2.toml): spike-input shift -2..13, bias m << e with |m| < 2**12, e <= 7
          ("conv shift 14 (over the weight exponent)", kattr("c2", "shift", 14), BAD),
          ("conv shift -3 (under the weight exponent)", kattr("c2", "shift", -3), BAD),
          ("conv shift 13 (the largest)", kattr("c2", "shift", 13), OK),
          ("conv bias 4097 (no m << e)", weight_edit("c2", "bias", lambda v: np.full_like(v, 4097)), BAD),
          ("conv bias 524160 (4095 << 7)", weight_edit("c2", "bias", lambda v: np.full_like(v, 524160)), OK),
          ("conv bias 524288 (over 4095 << 7)", weight_edit("c2", "bias", lambda v: np.full_like(v, 524288)), BAD),
          ("conv bias -524288 (-4096 << 7)", weight_edit("c2", "bias", lambda v: np.full_like(v, -524288)), OK),
          ("conv extra param", param("c2", "zz", np.zeros(3, np.int64)), BAD),
          ("conv weight strings", param("c2", "weight", np.array([b"ab"] * 8)), BAD),
          ("conv weight bool", weight_edit("c2", "weight", lambda v: v > 0), BAD),
          ("conv weight uint64 huge", weight_edit("c2", "weight", lambda v: np.full(v.shape, 2 ** 63, np.uint64)), BAD),
          ("dense weight NaN", weight_edit("fc", "weight", lambda v: np.where(v > 0, NAN, v)), BAD),
          ("dense weight other", weight_edit("fc", "weight", lambda v: -v), OK),
          ("dense weight transposed", weight_edit("fc", "weight", lambda v: v.T.copy()), BAD),
          ("vth NaN", param("n1", "vth", np.array([NAN])), BAD), ("vth 0", param("n1", "vth", np.array([0])), BAD),
          ("vth 2**30", param("n1", "vth", np.array([2 ** 30])), BAD),
          ("vth shape", param("n1", "vth", np.array([5, 5, 5])), BAD), ("vth 2", param("n1", "vth", np.array([2])), OK),
          ("vth per-element shape", param("n2", "vth", np.ones((4, 4, 3), np.int64)), BAD),
          ("vth missing", param("n1", "vth", delete=True), BAD),
          ("lut shape", param("ag", "lut", np.zeros(255, np.int64)), BAD),
          ("lut 1000", weight_edit("ag", "lut", lambda v: v * 1000), BAD),
          ("ca_w2 shape", param("ag", "ca_w2", np.zeros((2, 4), np.int64)), BAD),
          ("sa_weight even", param("ag", "sa_weight", np.zeros((1, 2, 2, 2), np.int64)), BAD),
          ("ca_bias huge", weight_edit("ag", "ca_bias", lambda v: v + 2 ** 45), BAD),
          ("ca_w1_avg hidden 3", param("ag", "ca_w1_avg", np.zeros((3, 4), np.int64)), BAD),
          ("ca_w1_max NaN", weight_edit("ag", "ca_w1_max", lambda v: np.full(v.shape, NAN)), BAD),
          ("sa_bias shape", param("ag", "sa_bias", np.zeros(2, np.int64)), BAD),
          ("sa_weight 200", weight_edit("ag", "sa_weight", lambda v: v * 0 + 200), BAD),
          ("dense bias float", weight_edit("fc", "bias", lambda v: v + 0.5), BAD),
          ("dense bias bomb", param("fc", "bias", bomb=True), BAD),
          ("scale NaN", param("fc", None, np.float64(NAN), scale=True), BAD),
          ("scale negative", param("fc", None, np.float64(-1.0), scale=True), BAD),
          ("scale shape", param("r1", None, np.ones(3), scale=True), BAD),
          ("scale int", param("fc", None, np.int64(2), scale=True), BAD),
          ("scale missing", param("fc", None, delete=True, scale=True), BAD),
          ("scale 2", param("fc", None, np.float64(2.0), scale=True), OK),
          ("params is a dataset", node(lambda f: (_proc(f, "input").create_dataset("params", data=[1]))), BAD)]
    # the mapping
    c += [("chip not json", mapattr("chip", "{"), BAD), ("chip cores_per_chip 0", chip_field("cores_per_chip", 0), BAD),
          ("chip mesh_cols 0", chip_field("mesh_cols", 0), BAD),
          ("chip key missing", chip_field("max_fan_in", delete=True), BAD),
          ("chip state_bits 100", chip_field("state_bits", 100), BAD),
          ("chip state_bits 16", chip_field("state_bits", 16), BAD),
          ("chip neurons_per_core 1", chip_field("neurons_per_core", 1), BAD),
          ("chip weight_bits str", chip_field("weight_bits", "8"), BAD), ("chip unknown key", chip_field("zz", 1), BAD),
          ("chip mesh_cols 2", chip_field("mesh_cols", 2), OK)]
    c += [(f"group {k}={v!r}", group_field(0, k, v), BAD)
          for k, v in (("cores", 10 ** 9), ("chunk", 0), ("chunk", 1), ("first_core", 10 ** 9), ("first_core", -1),
                       ("size", 3), ("members", ["zz"]), ("synapses_per_compartment", NAN), ("name", "zz"),
                       ("operand_bits_per_core", 1), ("cores", 1.5), ("row_len", 7), ("operand_row_bits", 5))]
    c += [("chip name newline", chip_field("name", "a\nb"), BAD),
          ("chip description int", chip_field("description", 3), BAD),
          ("chip synapse_memory_bits 100", chip_field("synapse_memory_bits", 100), BAD),
          ("chip max_fan_in 1", chip_field("max_fan_in", 1), BAD),
          ("chip mesh_cols 1000", chip_field("mesh_cols", 1000), BAD),
          ("chip decay_bits 0", chip_field("decay_bits", 0), BAD)]
    c += [("group extra field", group_field(1, "zz", 1), BAD),
          ("group removed", mapattr("groups", edit=lambda g: g.pop()), BAD),
          ("groups not json", mapattr("groups", "["), BAD), ("groups dict", mapattr("groups", "{}"), BAD),
          ("host empty", mapattr("host", "[]"), BAD),
          ("placement changed", mapattr("placement", edit=lambda p: p.update(n1="n2")), BAD),
          ("placement not json", mapattr("placement", "x"), BAD), ("mapping unknown attr", mapattr("zz", "1"), BAD),
          ("mapping attr missing", mapattr("host", delete=True), BAD)]
    # the file and its layout
    c += [("processes missing", node(lambda f: f.__delitem__("processes")), BAD),
          ("mapping missing", node(lambda f: f.__delitem__("mapping")), BAD),
          ("process removed", node(lambda f: f["processes"].__delitem__("0005")), BAD),
          ("process renamed", node(lambda f: f["processes"].move("0003", "0100")), BAD),
          ("process key letters", node(lambda f: f["processes"].move("0003", "abcd")), BAD),
          ("process extra member", node(lambda f: _proc(f, "n1").create_dataset("zz", data=[1])), BAD),
          ("process is a dataset", node(lambda f: (f["processes"].__delitem__("0003"),
                                                   f["processes"].create_dataset("0003", data=[1]))), BAD)]
    return c


def _write(valid_path, tmp_path, i, name, mutate):
    dst = tmp_path / f"case{i:03d}.loihi"
    if name == "truncated half":
        dst.write_bytes(valid_path.read_bytes()[: valid_path.stat().st_size // 2])
    elif name == "truncated 4k":
        dst.write_bytes(valid_path.read_bytes()[:4096])
    elif name == "not hdf5":
        dst.write_text("this is not an artifact\n")
    elif name == "empty file":
        dst.write_bytes(b"")
    else:
        shutil.copy(valid_path, dst)
        if mutate is not None:
            with h5py.File(dst, "r+") as f:
                mutate(f)
    return dst


@pytest.mark.slow
def test_crafted_artifacts_keep_the_contract(valid, tmp_path, record_property):
    valid_path, _ = valid
    table = cases() + [(n, None, BAD) for n in ("truncated half", "truncated 4k", "not hdf5", "empty file")]
    names = [n for n, _, _ in table]
    assert len(set(names)) == len(names), "case names must be unique"
    paths = [_write(valid_path, tmp_path, i, n, m) for i, (n, m, _) in enumerate(table)]
    commands = {"simulate": lambda p: ["simulate", p, "--limit", "2", "--data", "digits"],
                "energy": lambda p: ["energy", p, "--limit", "2"]}
    argv = [cmd(p) for cmd in commands.values() for p in paths]
    results = testutil.run_cases(argv, tmp_path, timeout_s=30, mem_gib=4)
    failures = []
    for k, cmd in enumerate(commands):
        for (name, _, expect), rec in zip(table, results[k * len(table):(k + 1) * len(table)], strict=True):
            why = testutil.contract_violation(rec)
            if why is None and expect == BAD and rec["rc"] != 2:
                why = f"exit {rec['rc']}, the mutation must be refused"
            if why is None and expect == OK and rec["rc"] != 0:
                why = f"exit {rec['rc']} for a valid artifact: {rec['stderr'].strip()[-200:]}"
            if why:
                failures.append(f"{cmd} [{name}]: {why}")
    print(f"crafted .loihi cases: {len(table)} per command, {len(argv)} runs")
    record_property("crafted_cases_per_command", len(table))
    assert not failures, f"{len(failures)} of {len(argv)} runs break the contract:\n" + "\n".join(failures)


# -- unit checks of the reader, cheaper than the CLI --------------------------------------------------

def test_valid_artifact_round_trips(valid):
    path, names = valid
    pg, mapping, report = read_artifact(path)
    assert [p.name for p in pg] == names and report == {"note": "crafted-input test"}
    assert mapping.cores == map_graph(tiny_graph(), load_chip("loihi2")).cores
    assert pg.processes["c2"].attrs.stride == (2, 2) and pg.processes["fc"].params["weight"].dtype == np.int64
    assert {p.name: p.attrs for p in pg} == {p.name: p.attrs for p in tiny_graph()}   # typed attrs round-trip


@pytest.mark.parametrize("name,mutate,match", [
    ("nan vth", param("n1", "vth", np.array([NAN])), "dtype float64; it must be integers"),
    ("cycle", pattr("n1", "sources", '["n2"]'), "not computed before it"),
    ("bomb", param("c2", "weight", bomb=True), "declare"),
    ("cores", group_field(0, "cores", 10 ** 9), "cores"),
    ("stride", kattr("c2", "stride", [0, 0]), "stride must be in 1"),
    ("dsmm on loihi2", pattr("m1", "kind", "dsmm"), "'loihi2' has no dynamic-operand memory"),
    ("no product neurons", chip_field("product_neurons", False), "no product neurons or graded spikes"),
    ("prodmm read by a pool", pattr("sp", "sources", '["m2"]'), "only a neuron or a sum can sum its terms"),
    ("format shift", kattr("c2", "shift", -3), r"'c2' \(synapse\): shift -3 is outside loihi2's -2\.\.13"),
    ("format bias", weight_edit("c2", "bias", lambda v: np.full_like(v, 4097)),
     r"'c2' \(synapse\): compartment bias 4097 is not mantissa << exponent"),
])
def test_reader_names_the_field(valid, tmp_path, name, mutate, match):
    dst = _write(valid[0], tmp_path, 0, name, mutate)
    with pytest.raises(ArtifactError, match=match) as e:
        read_artifact(dst)
    assert "\n" not in str(e.value) and str(dst) in str(e.value)
