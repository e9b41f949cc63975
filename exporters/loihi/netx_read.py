"""Reading a lava-dl netx HDF5 network (``.net``) into validated layer records.

The file layout is lava-dl 0.6's (``lava.lib.dl.netx.hdf5.Network`` and ``utils.NetDict``;
``NETX.md`` describes it): ``/layer/0 .. /layer/N-1`` groups, each with a one-element (or
scalar) ASCII ``type`` string and the datasets of its type, a ``neuron/`` group for layers
with neurons, and an optional ``/simulation`` group (``Ts``, ``tSample``). Every dataset is
checked here before anything computes with it: it must be a dataset (not a group), of a
numeric (or string) type, of a bounded size and shape, finite, integral where netx casts it
to ``int`` and in range. Anything else, and any field or type we do not support, is one
:class:`NetxImportError` line naming the layer and the field. Nothing here does arithmetic
on the values beyond netx's own cast (``NetDict`` reads ``weight`` and ``bias`` with
``astype(int)``: truncation toward zero, which we repeat).

Returned shapes are ours: ``[C, H, W]`` for images (netx stores them so and transposes to
Lava's ``[W, H, C]`` itself) and ``(N,)`` for dense layers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sresformer.errors import UserError
from sresformer.limits import MAX_T

MAX_FILE_BYTES = 1 << 31      # a netx file of 2 GiB is far beyond any network a chip holds
MAX_LAYERS = 4096
MAX_ELEMENTS = 1 << 24        # per dataset (PilotNet's largest holds 256,000 weights)
MAX_DIM = 1 << 16             # one side, channel count, kernel, stride, padding, dilation, groups
NEURON_TYPES_SUPPORTED = ("LOIHI", "CUBA")   # netx: both are Lava's CUBA LIF (get_neuron_params)
#: layer types netx 0.6 names (hdf5.Network._create); the ones we read, then the ones we refuse
LAYER_TYPES = ("input", "conv", "dense", "pool", "flatten")
LAYER_TYPES_REFUSED = {
    "average": "an average (population readout) layer",
    "concat": "a concatenation layer",
    "convT": "a transposed convolution",
    "unpool": "an unpooling layer",
    "dense_rec": "a recurrent dense layer",
    "dense_comp": "a complex-valued dense layer",
}
#: datasets each layer type may hold (``neuron`` is a group); inChannels & co. are slayer's
#: descriptive copies of the weight's shape, checked against it
LAYER_KEYS = {
    "input": {"type", "shape", "neuron", "weight", "bias"},
    "conv": {"type", "shape", "neuron", "weight", "bias", "stride", "padding", "dilation", "groups",
             "inChannels", "outChannels", "kernelSize", "delay"},
    "dense": {"type", "shape", "neuron", "weight", "bias", "inFeatures", "outFeatures", "delay"},
    "pool": {"type", "shape", "neuron", "weight", "bias", "kernelSize", "stride", "padding", "dilation", "delay"},
    "flatten": {"type", "shape"},
}
#: neuron fields: the CUBA parameters netx reads, and slayer's training-only ones (surrogate
#: gradient ``tauRho``, ``scaleRho``; ``theta`` a float copy of the threshold), which do not run
NEURON_KEYS = {"type", "iDecay", "vDecay", "vThMant", "refDelay", "wgtExp", "gradedSpike", "messageBits",
               "tauRho", "scaleRho", "theta"}


class NetxImportError(UserError):
    """A netx file that is missing, foreign, malformed, or uses what the chip model does not support."""


@dataclass
class NetxNeuron:
    """A CUBA neuron as netx reads it: ``iDecay``, ``vDecay`` in 1/4096 per step, ``vThMant``
    (threshold mantissa, weight LSBs), ``refDelay`` (steps)."""

    i_decay: int
    v_decay: int
    vth_mant: int
    ref_delay: int


@dataclass
class NetxLayer:
    """One ``/layer/i`` group, validated: its type, shape (ours: ``[C, H, W]`` or ``(N,)``),
    integer weight and bias (netx's cast), conv/pool geometry ``(y, x)`` pairs and neuron."""

    index: int
    type: str
    shape: tuple[int, ...]
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    geometry: dict = field(default_factory=dict)
    neuron: NetxNeuron | None = None
    has_delay: bool = False


@dataclass
class NetxFile:
    """The layers, the steps per sample (``simulation/tSample``; None when absent) and our own
    writer's root attributes (``sresformer.*``) when present."""

    layers: list[NetxLayer]
    t_sample: int | None
    attrs: dict


def _fail(where: str, what: str):
    raise NetxImportError(f"netx file: {where}: {what}")


def _dataset(group, key: str, where: str):
    import h5py

    obj = group.get(key)
    if obj is None:
        _fail(where, f"has no {key!r}")
    if not isinstance(obj, h5py.Dataset):
        _fail(where, f"{key!r} is a group, not a dataset")
    return obj


def _numbers(group, key: str, where: str, max_size: int = MAX_ELEMENTS, integral: bool = False,
             lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """A numeric dataset as float64 (or bool), checked: size, finite, integral, range."""
    ds = _dataset(group, key, where)
    w = f"{where}/{key}"
    if ds.dtype.kind not in "iufb":
        _fail(w, f"holds {ds.dtype} values, not numbers")
    if ds.size > max_size:
        _fail(w, f"holds {ds.size} values (at most {max_size})")
    try:
        v = np.asarray(ds[()])
    except Exception as e:   # a truncated or corrupted chunk: h5py raises OSError and others
        _fail(w, f"cannot be read ({type(e).__name__}: {' '.join(str(e).split())[:120]})")
    v = v.astype(np.float64)
    if not np.all(np.isfinite(v)):
        _fail(w, "holds NaN or infinite values")
    if integral and np.any(v != np.round(v)):
        _fail(w, "holds non-integer values")
    if v.size and lo is not None and v.min() < lo:
        _fail(w, f"holds {v.min():g}, below {lo:g}")
    if v.size and hi is not None and v.max() > hi:
        _fail(w, f"holds {v.max():g}, above {hi:g}")
    return v


def _int(group, key: str, where: str, lo: int, hi: int) -> int:
    v = _numbers(group, key, where, max_size=1, integral=True, lo=lo, hi=hi)
    if v.size != 1:
        _fail(f"{where}/{key}", "is empty")
    return int(v.reshape(-1)[0])


def _string(group, key: str, where: str) -> str:
    ds = _dataset(group, key, where)
    w = f"{where}/{key}"
    if ds.shape not in ((), (1,)) or ds.dtype.kind not in "SOU":
        _fail(w, f"must be one string (a {ds.dtype} dataset of shape {ds.shape})")
    try:
        v = ds[()] if ds.shape == () else ds[0]
        if isinstance(v, bytes):
            v = v.decode("ascii")
    except Exception:
        _fail(w, "is not an ASCII string")
    if not isinstance(v, str) or not v.isprintable() or len(v) > 64:
        _fail(w, "is not a short printable string")
    return v.strip()


def _pair(group, key: str, where: str, lo: int) -> tuple[int, int]:
    """A scalar or ``[y, x]`` (netx's ``expand``: a scalar means both sides)."""
    v = _numbers(group, key, where, max_size=2, integral=True, lo=lo, hi=MAX_DIM)
    if v.size == 1:
        return int(v.reshape(-1)[0]), int(v.reshape(-1)[0])
    if v.shape != (2,):
        _fail(f"{where}/{key}", f"has shape {v.shape}; netx needs a scalar or [y, x]")
    return int(v[0]), int(v[1])


def _neuron(group, where: str) -> NetxNeuron:
    import h5py

    n = group["neuron"]
    w = f"{where}/neuron"
    if not isinstance(n, h5py.Group):
        _fail(w, "is a dataset, not a group")
    extra = sorted(set(n.keys()) - NEURON_KEYS)
    if extra:
        _fail(w, f"has field {extra[0]!r}, which netx's CUBA neuron does not define (we refuse what we cannot "
                 "interpret)")
    kind = _string(n, "type", w)
    if kind == "SDNN":
        _fail(w, "is a sigma-delta neuron (SDNN); only CUBA (LOIHI) neurons are supported")
    if kind not in NEURON_TYPES_SUPPORTED:
        _fail(w, f"has neuron type {kind!r}; only CUBA (LOIHI) neurons are supported")
    if "gradedSpike" in n and bool(_numbers(n, "gradedSpike", w, max_size=1).any()):
        _fail(w, "sends graded spikes (gradedSpike); only binary-spike CUBA layers are supported")
    if "messageBits" in n and _int(n, "messageBits", w, 0, 32) != 0:
        _fail(w, "sends graded spikes (messageBits > 0); only binary-spike CUBA layers are supported")
    if "wgtExp" in n and _int(n, "wgtExp", w, -64, 64) != 0:
        _fail(w, "has a weight exponent wgtExp != 0, which netx ignores and a Loihi compiler applies; refused "
                 "rather than guessed")
    for key in ("tauRho", "scaleRho", "theta"):
        if key in n:
            _numbers(n, key, w, max_size=1)   # training-only, but still a well-formed number
    return NetxNeuron(i_decay=_int(n, "iDecay", w, 0, 4096), v_decay=_int(n, "vDecay", w, 0, 4096),
                      vth_mant=_int(n, "vThMant", w, 0, 2 ** 17 - 1),
                      ref_delay=_int(n, "refDelay", w, 0, 1 << 16) if "refDelay" in n else 1)


def _shape(group, where: str) -> tuple[int, ...]:
    v = _numbers(group, "shape", where, max_size=3, integral=True, lo=1, hi=MAX_DIM)
    if v.ndim != 1 or v.size not in (1, 3):
        _fail(f"{where}/shape", f"has {v.size} entries; netx layers are [C, H, W] or [N]")
    shape = tuple(int(s) for s in v)
    if int(np.prod(shape)) > MAX_ELEMENTS:
        _fail(f"{where}/shape", f"{shape} is more than {MAX_ELEMENTS} neurons")
    return shape


def _ints(group, key: str, where: str, lo: float, hi: float) -> np.ndarray:
    """A weight or bias as netx reads it: ``astype(int)`` (truncation toward zero), range-checked first."""
    v = _numbers(group, key, where, lo=lo, hi=hi)
    return np.trunc(v).astype(np.int64)


def _layer(group, index: int) -> NetxLayer:
    import h5py

    where = f"layer {index}"
    if not isinstance(group, h5py.Group):
        _fail(where, "is a dataset, not a group")
    kind = _string(group, "type", where)
    if kind in LAYER_TYPES_REFUSED:
        _fail(where, f"is {LAYER_TYPES_REFUSED[kind]} ({kind!r}); supported layers: {', '.join(LAYER_TYPES)}")
    if kind not in LAYER_TYPES:
        _fail(where, f"has unknown type {kind!r}; supported layers: {', '.join(LAYER_TYPES)}")
    extra = sorted(set(group.keys()) - LAYER_KEYS[kind])
    if extra:
        _fail(where, f"({kind}) has field {extra[0]!r}, which a netx {kind} layer does not define "
                     "(recurrent or unknown fields are refused)")
    layer = NetxLayer(index, kind, _shape(group, where) if "shape" in group or kind != "flatten" else ())
    if "neuron" in group:
        layer.neuron = _neuron(group, where)
    elif kind in ("conv", "pool"):
        _fail(where, f"({kind}) has no neuron group; netx {kind} layers need one")
    elif kind == "dense":
        _fail(where, "(dense) has no neuron group: netx would add a default integrator (iDecay 0) whose bias "
                     "acts on the voltage; not supported")
    if kind in ("conv", "dense", "pool") or (kind == "input" and layer.neuron is not None):
        if "weight" in group:
            layer.weight = _ints(group, "weight", where, -(2 ** 15), 2 ** 15)
        elif kind != "input":
            _fail(where, f"({kind}) has no 'weight'")
        if "bias" in group:
            layer.bias = _ints(group, "bias", where, -(2 ** 15), 2 ** 15)
    elif kind == "input" and ("weight" in group or "bias" in group):
        _fail(where, "(input without a neuron) has a weight or bias, which netx ignores there")
    if kind in ("conv", "pool"):
        for key, lo in (("stride", 1), ("padding", 0), ("dilation", 1)):
            if key not in group:
                _fail(where, f"({kind}) has no {key!r}")
            layer.geometry[key] = _pair(group, key, where, lo)
    if kind == "conv":
        layer.geometry["groups"] = _int(group, "groups", where, 1, MAX_DIM) if "groups" in group else 1
        for key in ("inChannels", "outChannels"):
            if key in group:
                layer.geometry[key] = _int(group, key, where, 1, MAX_DIM)
    if kind in ("conv", "pool") and "kernelSize" in group:
        layer.geometry["kernelSize"] = _pair(group, "kernelSize", where, 1)
    if kind == "dense":
        for key in ("inFeatures", "outFeatures"):
            if key in group:
                layer.geometry[key] = _int(group, key, where, 1, MAX_ELEMENTS)
    if "delay" in group:
        d = _numbers(group, "delay", where, lo=0, hi=62)
        layer.has_delay = bool(np.any(d != 0))
    return layer


def _check_file(path: Path) -> None:
    import h5py

    if not path.exists():
        raise NetxImportError(f"netx file {path} does not exist")
    if not path.is_file():
        raise NetxImportError(f"netx file {path} is not a regular file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise NetxImportError(f"netx file {path} is {size} bytes, more than any network a chip holds "
                              f"({MAX_FILE_BYTES} at most)")
    try:
        ok = h5py.is_hdf5(str(path))
    except OSError:
        ok = False
    if not ok:
        raise NetxImportError(f"{path} is not an HDF5 file (lava-dl netx networks are HDF5)")


def read_file(path: str | os.PathLike) -> NetxFile:
    """The validated layers of the netx file ``path`` (see the module docstring)."""
    import h5py

    path = Path(path)
    _check_file(path)
    try:
        f = h5py.File(path, "r")
    except Exception as e:
        raise NetxImportError(f"netx file {path} cannot be opened as HDF5 ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:120]})") from None
    try:
        return _read_open(f)
    except NetxImportError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:   # h5py on a truncated file
        raise NetxImportError(f"netx file {path} is damaged or truncated ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:120]})") from None
    finally:
        f.close()


def _read_open(f) -> NetxFile:
    import h5py

    root = f.get("layer")
    if not isinstance(root, h5py.Group):
        raise NetxImportError("not a netx network: the file has no /layer group")
    keys = list(root.keys())
    if not keys:
        raise NetxImportError("netx file: /layer holds no layers")
    if len(keys) > MAX_LAYERS:
        raise NetxImportError(f"netx file: /layer holds {len(keys)} layers (at most {MAX_LAYERS})")
    want = {str(i) for i in range(len(keys))}
    if set(keys) != want:
        odd = sorted(set(keys) - want)[0]
        raise NetxImportError(f"netx file: /layer/{odd} breaks the numbering; layers are /layer/0 .. "
                              f"/layer/{len(keys) - 1}")
    layers = [_layer(root[str(i)], i) for i in range(len(keys))]
    t_sample = None
    sim = f.get("simulation")
    if sim is not None:
        if not isinstance(sim, h5py.Group):
            raise NetxImportError("netx file: /simulation is not a group")
        if "Ts" in sim and float(_numbers(sim, "Ts", "simulation", max_size=1, lo=0).reshape(-1)[0]) != 1.0:
            raise NetxImportError("netx file: simulation/Ts is not 1; only one chip step per sample step is "
                                  "supported")
        if "tSample" in sim:
            t_sample = _int(sim, "tSample", "simulation", 1, MAX_T)
    attrs = {}
    for key in ("sresformer.T", "sresformer.input_exponent", "sresformer.input_bits", "sresformer.input_static"):
        if key in f.attrs:
            v = np.asarray(f.attrs[key])
            kinds = "b" if key.endswith("static") else "iu"
            if v.shape != () or v.dtype.kind not in kinds:
                what = "a flag" if kinds == "b" else "an integer"
                raise NetxImportError(f"netx file: root attribute {key} is not {what}")
            attrs[key] = bool(v) if kinds == "b" else int(v)
    return NetxFile(layers, t_sample, attrs)
