"""The validating half of our NIR reader: every field checked before anything computes with it.

Two passes, both raising a one-line :class:`NIRError` (a ``UserError``):

- :func:`prescan_hdf5` looks at the HDF5 file's dataset *declarations* (shapes, dtypes)
  before ``nir.read`` loads a single array, so a file declaring a 10^10-element weight
  (compressed chunks that were never written take no space on disk) is refused instead
  of ballooning memory;
- :func:`validate_graph` checks what ``nir.read`` built: node types we run, parameter
  arrays of finite real numbers with the shapes each node type needs, edges between
  existing nodes, declared shapes of sane size, the root metadata (``T``, ``dt``,
  ``format_version``, ...) and the node hints (``sresformer.groups``) of the right types
  and ranges. Everything NaN or Inf is refused here, so it never reaches a lowering that
  would turn it into integers (the extension placeholders, all-NaN by design, are exempt).

Shape agreement between connected nodes and cycles are checked where the graph is built
(``load.GraphModule`` runs zeros through it; the Loihi ``FlatGraph`` does the same).
"""

from __future__ import annotations

import math
import numbers

import nir
import numpy as np

from sresformer.limits import MAX_T

from .convention import (
    FORMAT_VERSION,
    KEY_DT,
    KEY_EXTENSION,
    KEY_FORMAT_VERSION,
    KEY_INPUT,
    KEY_READOUT,
    KEY_REQUIRED,
    KEY_T,
    NIRError,
)

MAX_ELEMENTS = 2 ** 28        # per array or declared per-sample shape (1 GiB of float32)
MAX_TOTAL_BYTES = 2 ** 34     # all arrays of one file together (a large ImageNet model is a few GiB)
MAX_DEPTH = 16                # nesting of graphs (ours: 2)
MAX_GEOMETRY = 4096           # kernel, stride, padding, dilation entries
INPUT_MODES = ("static", "frames")
READOUTS = ("mean_over_T",)

#: node types this reader runs (exact types: a subclass would be someone else's node)
SUPPORTED = (nir.Input, nir.Output, nir.NIRGraph, nir.Conv2d, nir.Affine, nir.Linear, nir.Scale, nir.Flatten,
             nir.SumPool2d, nir.AvgPool2d, nir.LIF, nir.CubaLIF, nir.LI, nir.IF, nir.Threshold)
SUPPORTED_NAMES = ", ".join(c.__name__ for c in SUPPORTED)

#: neuron parameters: name -> must be positive (time constants)
NEURON_PARAMS = {nir.LIF: {"tau": True, "r": False, "v_leak": False, "v_threshold": False, "v_reset": False},
                 nir.CubaLIF: {"tau_mem": True, "tau_syn": True, "r": False, "v_leak": False, "v_threshold": False,
                               "v_reset": False, "w_in": False},
                 nir.LI: {"tau": True, "r": False, "v_leak": False},
                 nir.IF: {"r": False, "v_threshold": False, "v_reset": False},
                 nir.Threshold: {"threshold": False}}


# -- before nir.read: the file's declared arrays ------------------------------------------------

def prescan_hdf5(h5file, path) -> None:
    """Refuse datasets of huge declared size, too many bytes in all, or too deep nesting (nothing is read)."""
    import h5py

    total = [0]
    problem: list[str] = []

    def visit(name, obj):
        if problem:
            return
        if name.count("/") > 4 * MAX_DEPTH:
            problem.append(f"nests groups deeper than {MAX_DEPTH} graphs ({name[:80]}...)")
        elif isinstance(obj, h5py.Dataset):
            size = int(np.prod(obj.shape, dtype=np.float64)) if obj.shape else 1
            if size > MAX_ELEMENTS:
                problem.append(f"declares array {name} of shape {tuple(obj.shape)} ({size:.3g} elements, at most "
                               f"{MAX_ELEMENTS})")
            total[0] += size * max(1, obj.dtype.itemsize)
            if total[0] > MAX_TOTAL_BYTES:
                problem.append(f"declares more than {MAX_TOTAL_BYTES / 2 ** 30:.0f} GiB of arrays")

    h5file.visititems(visit)
    if problem:
        raise NIRError(f"{path} {problem[0]}: refused before loading; is the file damaged?")


# -- after nir.read: values, shapes, metadata ---------------------------------------------------

def _where(qual: str) -> str:
    return f"node {qual!r}" if qual else "the root graph"


def real_array(value, what: str, *, finite: bool = True, ndim: int | None = None) -> np.ndarray:
    """``value`` as a numpy array of real numbers (bool, text, complex refused), finite unless told."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise NIRError(f"{what} is not an array of numbers") from None
    if arr.dtype.kind not in "iuf":
        raise NIRError(f"{what} must hold real numbers, got {arr.dtype} values")
    if arr.size > MAX_ELEMENTS:
        raise NIRError(f"{what} has {arr.size} elements (at most {MAX_ELEMENTS})")
    if ndim is not None and arr.ndim != ndim:
        raise NIRError(f"{what} must be {ndim}-D, got shape {arr.shape}")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise NIRError(f"{what} holds {bad} NaN or infinite value(s): the file is damaged or the model diverged")
    return arr


def integer(value, what: str, low: int | None = None, high: int | None = None) -> int:
    """A scalar integer (Python or numpy; bool and fractional values refused) within ``[low, high]``."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            value = int(value)   # 4.0 written by another tool: the same integer
        else:
            raise NIRError(f"{what} must be an integer, got {_show(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise NIRError(f"{what} = {value} is outside {span}")
    return value


def real(value, what: str, low: float | None = None, high: float | None = None, *, low_open: bool = False,
         high_open: bool = False) -> float:
    """A finite scalar real number within the given bounds (open or closed)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise NIRError(f"{what} must be a finite number, got {_show(value)}")
    v = float(value)
    if low is not None and (v < low or (low_open and v == low)):
        raise NIRError(f"{what} = {v:g} must be {'>' if low_open else '>='} {low:g}")
    if high is not None and (v > high or (high_open and v == high)):
        raise NIRError(f"{what} = {v:g} must be {'<' if high_open else '<='} {high:g}")
    return v


def text(value, what: str, choices=None) -> str:
    """A metadata string (bytes decoded), one of ``choices`` when given."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bytes):
        try:
            value = value.decode("utf8")
        except UnicodeDecodeError:
            raise NIRError(f"{what} is not UTF-8 text") from None
    if not isinstance(value, str):
        raise NIRError(f"{what} must be text, got {_show(value)}")
    if choices is not None and value not in choices:
        raise NIRError(f"{what} = {value!r} is not one of {', '.join(choices)}")
    return value


def _show(value) -> str:
    s = repr(value) if not isinstance(value, np.ndarray) else f"an array of shape {value.shape}"
    return s if len(s) <= 60 else s[:57] + "..."


def pair(value, what: str, low: int, high: int = MAX_GEOMETRY) -> tuple[int, int]:
    """Kernel / stride / padding / dilation: one or two integers within ``[low, high]``."""
    arr = real_array(value, what)
    if arr.size not in (1, 2) or arr.ndim > 1:
        raise NIRError(f"{what} must have one or two entries, got shape {arr.shape}")
    vals = tuple(integer(v, what, low, high) for v in np.broadcast_to(arr.reshape(-1), (2,)))
    return vals[0], vals[1]


def shape_of(value, what: str) -> tuple[int, ...]:
    """A declared per-sample shape: positive integers whose product is at most MAX_ELEMENTS."""
    arr = real_array(value, what)
    if arr.ndim > 1:
        raise NIRError(f"{what} must be a list of sizes, got an array of shape {arr.shape}")
    dims = tuple(integer(v, what, 1) for v in arr.reshape(-1))
    if math.prod(dims) > MAX_ELEMENTS:
        raise NIRError(f"{what} {list(dims)} has {math.prod(dims):.3g} elements per sample (at most {MAX_ELEMENTS})")
    return dims


def validate_metadata(meta: dict, path) -> None:
    """Root metadata keys this project reads: the right types and ranges (others are free-form)."""
    if not isinstance(meta, dict):
        raise NIRError(f"{path}: metadata must be a dict")
    if KEY_T in meta:
        integer(meta[KEY_T], f"{path}: metadata T (steps per inference)", 1, MAX_T)
    if KEY_DT in meta:
        real(meta[KEY_DT], f"{path}: metadata dt", 0.0, low_open=True)
    if KEY_FORMAT_VERSION in meta:
        v = integer(meta[KEY_FORMAT_VERSION], f"{path}: metadata format_version", 1)
        if v > FORMAT_VERSION:
            raise NIRError(f"{path} is sresformer-nir version {v}; this reader reads up to {FORMAT_VERSION}: "
                           "upgrade sresformer")
    for key in ("format", KEY_REQUIRED, "model", "threshold_rule"):
        if key in meta:
            text(meta[key], f"{path}: metadata {key}")
    if KEY_INPUT in meta:
        text(meta[KEY_INPUT], f"{path}: metadata {KEY_INPUT}", INPUT_MODES)
    if KEY_READOUT in meta:
        text(meta[KEY_READOUT], f"{path}: metadata {KEY_READOUT}", READOUTS)
    for key in ("img_size", "in_channels", "num_classes"):
        if key in meta:
            integer(meta[key], f"{path}: metadata {key}", 1, MAX_ELEMENTS)


def _types(node, qual: str) -> None:
    for key in ("input_type", "output_type"):
        types = getattr(node, key, None) or {}
        if not isinstance(types, dict):
            raise NIRError(f"{_where(qual)}: {key} is not a dict")
        for port, shape in types.items():
            if shape is not None and np.size(shape):
                shape_of(shape, f"{_where(qual)}: declared {key} {port}")


def _conv(node: nir.Conv2d, qual: str, placeholder_ok: bool) -> None:
    w = _where(qual)
    groups = integer(node.groups, f"{w}: Conv2d groups", 0 if placeholder_ok else None)
    placeholder = groups == 0 and placeholder_ok
    if groups < 1 and not placeholder:
        raise NIRError(f"{w}: Conv2d groups={groups} (an extension placeholder outside a marked subgraph?)")
    weight = real_array(node.weight, f"{w}: Conv2d weight", finite=not placeholder, ndim=4)
    if node.bias is not None:
        bias = real_array(node.bias, f"{w}: Conv2d bias", finite=not placeholder)
        if bias.size not in (1, weight.shape[0]) or bias.ndim > 1:
            raise NIRError(f"{w}: Conv2d bias of shape {bias.shape} does not fit {weight.shape[0]} output channels")
    if groups > 1 and weight.shape[0] % groups:
        raise NIRError(f"{w}: Conv2d groups={groups} does not divide its {weight.shape[0]} output channels")
    pair(node.stride, f"{w}: Conv2d stride", 1)
    pair(node.dilation, f"{w}: Conv2d dilation", 1)
    if isinstance(node.padding, str):
        text(node.padding, f"{w}: Conv2d padding", ("same", "valid"))
    else:
        pair(node.padding, f"{w}: Conv2d padding", 0)
    if node.input_shape is not None:
        shape_of(node.input_shape, f"{w}: Conv2d input_shape")
    hint = (node.metadata or {}).get("sresformer.groups")
    if hint is not None:
        g = integer(hint, f"{w}: metadata sresformer.groups", 1)
        if weight.shape[0] % g or weight.shape[1] % g:
            raise NIRError(f"{w}: metadata sresformer.groups = {g} does not divide the conv's {weight.shape[0]} "
                           f"output and {weight.shape[1]} input channels")


def validate_node(node, qual: str, placeholder_ok: bool = False) -> None:
    """One non-graph node: a type we run, finite real parameters of the shapes its type needs."""
    w = _where(qual)
    if type(node) not in SUPPORTED:
        raise NIRError(f"{w}: unsupported NIR node type {type(node).__name__} (supported: {SUPPORTED_NAMES})")
    _types(node, qual)
    if isinstance(node, (nir.Input, nir.Output)):
        return
    if isinstance(node, nir.Conv2d):
        _conv(node, qual, placeholder_ok)
    elif isinstance(node, (nir.Affine, nir.Linear)):
        weight = real_array(node.weight, f"{w}: {type(node).__name__} weight", ndim=2)
        if isinstance(node, nir.Affine):
            bias = real_array(node.bias, f"{w}: Affine bias")
            if bias.size not in (1, weight.shape[0]) or bias.ndim > 1:
                raise NIRError(f"{w}: Affine bias of shape {bias.shape} does not fit {weight.shape[0]} outputs")
    elif isinstance(node, nir.Scale):
        real_array(node.scale, f"{w}: Scale scale")
    elif isinstance(node, nir.Flatten):
        integer(node.start_dim, f"{w}: Flatten start_dim", -8, 7)
        integer(node.end_dim, f"{w}: Flatten end_dim", -8, 7)
    elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        pair(node.kernel_size, f"{w}: {type(node).__name__} kernel_size", 1)
        pair(node.stride, f"{w}: {type(node).__name__} stride", 1)
        pair(node.padding, f"{w}: {type(node).__name__} padding", 0)
    else:
        for key, positive in NEURON_PARAMS[type(node)].items():
            arr = real_array(getattr(node, key), f"{w}: {type(node).__name__} {key}")
            if positive and np.any(arr <= 0):
                raise NIRError(f"{w}: {type(node).__name__} {key} must be positive (a time constant)")


def validate_graph(graph, path, qual: str = "", depth: int = 0) -> None:
    """The whole (nested) graph: nodes, edges, extension markers; root metadata when ``qual`` is empty."""
    from .extension import build_extension, extension_name

    if depth > MAX_DEPTH:
        raise NIRError(f"{path}: graphs nest deeper than {MAX_DEPTH} levels")
    w = _where(qual)
    if not isinstance(graph.nodes, dict) or not all(isinstance(k, str) for k in graph.nodes):
        raise NIRError(f"{w}: nodes must be a dict keyed by names")
    if depth == 0:
        validate_metadata(dict(graph.metadata or {}), path)
    edges = graph.edges if graph.edges is not None else []
    for e in edges:
        if len(e) != 2 or not all(isinstance(x, str) for x in e):
            raise NIRError(f"{w}: edge {_show(e)} is not a pair of node names")
        for end in e:
            if end not in graph.nodes:
                raise NIRError(f"{w if qual else 'graph <root>'}: edge ({e[0]!r}, {e[1]!r}) names a missing node "
                               f"{end!r}")
    for name, node in graph.nodes.items():
        sub = f"{qual}.{name}" if qual else name
        if isinstance(node, nir.NIRGraph) and type(node) is nir.NIRGraph:
            ext = extension_name(node) if KEY_EXTENSION in (node.metadata or {}) else None
            if ext is not None:
                text((node.metadata or {})[KEY_EXTENSION], f"{_where(sub)}: metadata {KEY_EXTENSION}")
                for inner_name, inner in node.nodes.items():
                    validate_node(inner, f"{sub}.{inner_name}", placeholder_ok=True)
                build_extension(sub, node)   # its metadata: types, ranges, required keys
            else:
                validate_graph(node, path, sub, depth + 1)
        else:
            validate_node(node, sub)
