"""Crafted netx files: valid small networks mutated one field at a time, read by ``read_netx``.

Every case must either read (where the mutation leaves a network we support: ``ok``) or be
refused with one :class:`NetxImportError` line (``refuse``); any other exception, a
multi-line message or a wrong outcome fails. The CLI side of the contract (one line on
stderr, exit 2) is ``tests/cli/test_cli_netx.py``.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from netx_nets import net_graded_host_input, net_input_neuron_cnn, net_vector_input

from exporters.loihi.netx_import import read_netx
from exporters.loihi.netx_read import NetxImportError
from testutil import set_dataset as _set


def _del(path):
    def fn(f):
        del f[path]
    return fn


def _first(path, value):
    def fn(f):
        a = np.array(f[path][()], dtype=np.float64)
        a.reshape(-1)[0] = value
        _set(path, a.astype(np.float32))(f)
    return fn


def _move(src, dst):
    def fn(f):
        f.move(src, dst)
    return fn


def _string(path, text):
    def fn(f):
        if path in f:
            del f[path]
        f.create_dataset(path, (1,), f"S{len(text)}", [text.encode()])
    return fn


def _scalar_bytes(path, text):
    return _set(path, text.encode())


L1, L3, L4 = "layer/1", "layer/3", "layer/4"
N1 = f"{L1}/neuron"

#: (case id, mutation of the input-neuron CNN, expected outcome)
CASES = [
    ("no layer group", _del("layer"), "refuse"),
    ("input type average", _string("layer/0/type", "average"), "refuse"),
    ("conv type convT", _string(f"{L1}/type", "convT"), "refuse"),
    ("conv type dense_rec", _string(f"{L1}/type", "dense_rec"), "refuse"),
    ("unknown layer type", _string(f"{L1}/type", "bogus"), "refuse"),
    ("type is an integer", _set(f"{L1}/type", np.int64(3)), "refuse"),
    ("type of two strings", _set(f"{L1}/type", np.array([b"conv", b"conv"])), "refuse"),
    ("sigma-delta neuron", _scalar_bytes(f"{N1}/type", "SDNN"), "refuse"),
    ("resonate-and-fire neuron", _scalar_bytes(f"{N1}/type", "RF_PHASE"), "refuse"),
    ("graded spikes", _set(f"{N1}/gradedSpike", True), "refuse"),
    ("graded spikes off", _set(f"{N1}/gradedSpike", False), "ok"),
    ("message bits", _set(f"{N1}/messageBits", np.int64(4)), "refuse"),
    ("refractory delay", _set(f"{N1}/refDelay", np.int64(3)), "refuse"),
    ("refDelay 0", _set(f"{N1}/refDelay", np.int64(0)), "ok"),
    ("weight exponent", _set(f"{N1}/wgtExp", np.int64(2)), "refuse"),
    ("iDecay above 4096", _set(f"{N1}/iDecay", np.int64(5000)), "refuse"),
    ("bias with current decay", _set(f"{N1}/iDecay", np.int64(100)), "refuse"),
    ("vDecay negative", _set(f"{N1}/vDecay", np.int64(-1)), "refuse"),
    ("vDecay fraction", _set(f"{N1}/vDecay", 10.5), "refuse"),
    ("vThMant negative", _set(f"{N1}/vThMant", np.int64(-1)), "refuse"),
    ("vThMant above 17 bits", _set(f"{N1}/vThMant", np.int64(2 ** 17)), "refuse"),
    ("vThMant NaN", _set(f"{N1}/vThMant", np.nan), "refuse"),
    ("vThMant an array", _set(f"{N1}/vThMant", np.arange(4)), "refuse"),
    ("theta a string", _string(f"{N1}/theta", "x"), "refuse"),
    ("unknown neuron field", _set(f"{N1}/foo", np.int64(1)), "refuse"),
    ("neuron a dataset", lambda f: (f.__delitem__(N1), f.__setitem__(N1, 1)), "refuse"),
    ("no neuron on a conv", _del(N1), "refuse"),
    ("no neuron on a dense", _del(f"{L3}/neuron"), "refuse"),
    ("no vThMant", _del(f"{N1}/vThMant"), "refuse"),
    ("weight NaN", _first(f"{L1}/weight", np.nan), "refuse"),
    ("weight Inf", _first(f"{L1}/weight", np.inf), "refuse"),
    ("weight beyond 8 bits", _first(f"{L1}/weight", 200), "refuse"),
    ("weight huge", _first(f"{L1}/weight", 1e30), "refuse"),
    ("weight fraction (netx truncates)", _first(f"{L1}/weight", 1.5), "ok"),
    ("weight strings", _set(f"{L1}/weight", np.array([b"a", b"b"])), "refuse"),
    ("weight 3-D", _set(f"{L1}/weight", np.zeros((4, 2, 3), np.float32)), "refuse"),
    ("weight wrong in-channels", _set(f"{L1}/weight", np.ones((4, 3, 3, 3), np.float32)), "refuse"),
    ("weight a group", lambda f: (f.__delitem__(f"{L1}/weight"), f.create_group(f"{L1}/weight")), "refuse"),
    ("no weight", _del(f"{L1}/weight"), "refuse"),
    ("stride 0", _set(f"{L1}/stride", np.array([0, 2])), "refuse"),
    ("stride of three", _set(f"{L1}/stride", np.array([1, 2, 3])), "refuse"),
    ("scalar stride (netx expands it)", _set(f"{L1}/stride", np.int64(2)), "ok"),
    ("padding negative", _set(f"{L1}/padding", np.array([-1, 1])), "refuse"),
    ("dilation 0", _set(f"{L1}/dilation", np.array([0, 1])), "refuse"),
    ("groups 3", _set(f"{L1}/groups", np.int64(3)), "refuse"),
    ("shape disagrees", _set(f"{L1}/shape", np.array([4, 4, 4])), "refuse"),
    ("shape of two", _set("layer/0/shape", np.array([2, 6])), "refuse"),
    ("shape zero", _set("layer/0/shape", np.array([0, 6, 6])), "refuse"),
    ("shape huge", _set("layer/0/shape", np.array([60000, 60000, 60000])), "refuse"),
    ("bias of five", _set(f"{L1}/bias", np.ones(5, np.float32)), "refuse"),
    ("bias beyond 13 bits", _first(f"{L1}/bias", 10000), "refuse"),
    ("bias 4096 (13-bit signed tops at 4095)", _first(f"{L1}/bias", 4096), "refuse"),
    ("bias -4096", _first(f"{L1}/bias", -4096), "ok"),
    ("scalar bias", _set(f"{L1}/bias", np.float32(2)), "ok"),
    ("nonzero delays", _set(f"{L3}/delay", np.ones(5)), "refuse"),
    ("zero delays", _set(f"{L3}/delay", np.zeros(5)), "ok"),
    ("delay above 62", _set(f"{L3}/delay", np.full(5, 99.0)), "refuse"),
    ("recurrent weight", _set(f"{L3}/weight_rec", np.zeros((5, 5), np.float32)), "refuse"),
    ("conv a dataset", lambda f: (f.__delitem__(L1), f.__setitem__(L1, 1)), "refuse"),
    ("numbering gap", _move(L4, "layer/7"), "refuse"),
    ("no flatten before dense", lambda f: (f.__delitem__("layer/2"), f.move(L3, "layer/2"), f.move(L4, "layer/3")),
     "refuse"),
    ("dense weights all zero", _set(f"{L3}/weight", np.zeros((5, 36), np.float32)), "refuse"),
    ("dense weights netx clips", _first(f"{L3}/weight", 250), "refuse"),
    ("dense inFeatures disagree", _set(f"{L3}/inFeatures", np.int64(35)), "refuse"),
    ("dense weight wrong inputs", _set(f"{L3}/weight", np.ones((5, 35), np.float32)), "refuse"),
    ("tSample 0", _set("simulation/tSample", np.int64(0)), "refuse"),
    ("tSample huge", _set("simulation/tSample", np.int64(10 ** 6)), "refuse"),
    ("Ts 2", _set("simulation/Ts", np.int64(2)), "refuse"),
    ("no simulation group (no T)", _del("simulation"), "refuse"),
    ("input weight of three", _set("layer/0/weight", np.ones(3, np.float32)), "refuse"),
    ("input weight overflows a_in", _set("layer/0/weight", np.float32(30000)), "refuse"),
    ("input weight 200 (100 x 2)", _set("layer/0/weight", np.float32(200)), "ok"),
    ("input weight 201 (no 8-bit mantissa)", _set("layer/0/weight", np.float32(201)), "refuse"),
    ("second input layer", _string(f"{L3}/type", "input"), "refuse"),
    ("leaky unreachable readout", _set(f"{L4}/neuron/vDecay", np.int64(100)), "refuse"),
    ("readout that can spike", _set(f"{L4}/neuron/vThMant", np.int64(1)), "ok"),
    ("pool without kernel weights", lambda f: (_string(f"{L1}/type", "pool")(f), f.__delitem__(f"{L1}/groups")),
     "refuse"),
]

#: (case id, mutation of the graded-host-input network, expected outcome)
GRADED_CASES = [
    ("our writer's input bits", lambda f: f.attrs.__setitem__("sresformer.input_bits", np.int64(40)), "refuse"),
    ("our writer's input exponent text", lambda f: f.attrs.__setitem__("sresformer.input_exponent", "x"), "refuse"),
    ("graded input overflows a_in", _set(f"{L1}/weight", np.full((4, 1, 3, 3), 127, np.float32)), "refuse"),
    ("input layer with a weight but no neuron", _set("layer/0/weight", np.float32(3)), "refuse"),
]


#: (case id, mutation of the vector-input MLP, expected outcome)
VECTOR_CASES = [
    ("as it is", lambda f: None, "ok"),
    ("a conv reads the vector", lambda f: (f.__delitem__("layer/1"), f.copy(f["layer/2"], "layer/1"),
                                            _string("layer/1/type", "conv")(f),
                                            f["layer/1"].create_dataset("stride", data=np.asarray([1, 1])),
                                            f["layer/1"].create_dataset("padding", data=np.asarray([0, 0])),
                                            f["layer/1"].create_dataset("dilation", data=np.asarray([1, 1]))),
     "refuse"),
]


def _crafted(tmp_path, make, mutate):
    path = make(tmp_path / "base.net", np.random.default_rng(0))
    out = tmp_path / "crafted.net"
    shutil.copy(path, out)
    with h5py.File(out, "a") as f:
        mutate(f)
    return out


def _outcome(path) -> str:
    try:
        read_netx(path)
    except NetxImportError as e:
        msg = str(e)
        assert msg and "\n" not in msg and len(msg) < 400, f"not one short line: {msg!r}"
        return "refuse"
    return "ok"


@pytest.mark.parametrize("case, mutate, expected", CASES, ids=[c[0] for c in CASES])
def test_crafted_input_neuron_cnn(case, mutate, expected, tmp_path):
    assert _outcome(_crafted(tmp_path, net_input_neuron_cnn, mutate)) == expected


@pytest.mark.parametrize("case, mutate, expected", GRADED_CASES, ids=[c[0] for c in GRADED_CASES])
def test_crafted_graded_input(case, mutate, expected, tmp_path):
    assert _outcome(_crafted(tmp_path, net_graded_host_input, mutate)) == expected


@pytest.mark.parametrize("case, mutate, expected", VECTOR_CASES, ids=[c[0] for c in VECTOR_CASES])
def test_crafted_vector_input(case, mutate, expected, tmp_path):
    assert _outcome(_crafted(tmp_path, net_vector_input, mutate)) == expected


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all\n", None, "truncated", "nir", "dir", "missing"])
def test_foreign_and_damaged_files(content, tmp_path):
    path = tmp_path / "x.net"
    if content == "truncated":
        base = net_input_neuron_cnn(tmp_path / "base.net", np.random.default_rng(0))
        data = base.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "nir":
        with h5py.File(path, "w") as f:
            f.create_group("node").create_dataset("type", data=b"NIRGraph")
    elif content == "dir":
        path.mkdir()
    elif content == "missing":
        pass
    elif content is None:
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)   # the signature and nothing behind it
    else:
        path.write_bytes(content)
    assert _outcome(path) == "refuse"
