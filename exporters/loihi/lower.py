"""Lower a flat NIR graph to an integer process graph (quantization happens here).

Every graded value is an integer in units of ``2**e`` times a positive per-value
``scale``. Values that are summed share one unit (a union-find over the graph: the
sources of a sum, a pass-through and its source, a dual-spike product and its dynamic
operand); each unit class takes the finest power of two that keeps its calibrated
peak within ``2**(state_bits-1) / HEADROOM`` -- except a class holding spikes (summed into a
stream, as Spikformer's residuals) or counts of coincident spikes (a product of two spike
values), which are small integers and keep unit 1. Then:

- a unit class whose synapses carry biases is coarse enough that their summed peak fits the
  chip's bias format (``m << e``, :mod:`.formats`);
- a synapse (conv / dense) stores ``weight_bits``-bit weight mantissas (the chip's) for
  ``W * scale_in * 2**(e_in - e_out)``
  with one per-layer power-of-two ``shift``, and an integer bias at ``2**e_out``;
- a ``Scale`` node multiplies nothing: its factor rides on the value's ``scale`` and folds
  into whatever reads it (DSSA's c1, c2 into the attention neurons' thresholds:
  ``LIF(c x)`` with threshold 1 is ``LIF(x)`` with threshold ``1/c``); an all-ones Scale
  is a residual sum;
- a LIF with ``k = dt/tau``, ``r`` gets ``dv = 2**decay_bits k`` (the chip's decay resolution)
  and ``vth = v_th / (k r 2**e scale)``
  (its membrane unit is ``k r 2**e scale``, so the input enters without a multiply); an
  IF has ``dv = 0`` and ``vth = v_th / (r 2**e scale)``;
- average pooling becomes sum pooling with ``1/k^2`` on the value's scale.

Every graded output saturates where the chip does (``out_bits``): a synapse's or dual-spike
product's value is accumulated in a compartment (the chip's ``state_bits``); a sum or sum pool
is sent on as a graded spike payload (``graded_spike_bits`` where the chip has graded spikes and
that is narrower). The export refuses a model whose calibration data saturates anything.

The float-to-integer error is therefore: weight mantissas (``weight_bits`` per layer), biases and
thresholds rounded to the unit, input pixels to 8 bits, and saturation beyond the range.
"""

from __future__ import annotations

import math

import nir
import numpy as np

from exporters.nir.convention import NIRError
from exporters.nir.fold import groups_of_dense
from hw_sim.arith import quantize_mantissas
from hw_sim.attngate import gate_params
from hw_sim.chips import Chip, load_chip
from hw_sim.processes import (
    GRADED_KINDS,
    DsmmAttrs,
    FlattenAttrs,
    GateAttrs,
    InputAttrs,
    MaxPoolAttrs,
    NeuronAttrs,
    Process,
    ProcessGraph,
    ProdmmAttrs,
    SumAttrs,
    SumPoolAttrs,
    SynapseAttrs,
    sat_limit,
)
from hw_sim.prodneuron import attention_lowering
from sresformer.progress import track

from .cumulative import lower_counter, lower_rate_neuron
from .flatgraph import NEURON_KINDS, FlatGraph
from .formats import fit_formats
from .units import Classes, compact, exponent_for, f64, pair, pooled

UNSUPPORTED = {"cubalif": "CubaLIF lowering is not supported yet; use LIF or IF",
               "li": "LI (a non-spiking leaky readout) is not supported by the chip model",
               "threshold": "Threshold nodes are not supported by the chip model",
               "graph": "unexpected nested graph"}
HEADROOM = 4.0    # calibrated peaks use at most a quarter of the state range
#: graded kinds whose value is sent as a graded spike payload (the rest accumulate in a compartment)
PAYLOAD_KINDS = ("sum", "sumpool")
INPUT_BITS = 8    # the host's input quantization (a choice of this lowering, not a chip field)


class Lowering:
    """Build the :class:`ProcessGraph` of a :class:`FlatGraph` from calibrated peaks."""

    def __init__(self, fg: FlatGraph, peaks: dict[str, float], T: int, chip: Chip, input_static: bool = True):
        self.fg, self.peaks, self.T = fg, peaks, T
        # the chip file's widths: membrane / current, weight mantissas, decay resolution
        self.state_bits, self.weight_bits, self.decay_bits = chip.state_bits, chip.weight_bits, chip.decay_bits
        payload = chip.graded_spike_bits   # 0: binary spikes only (a graded value stays on its core)
        self.out_bits = {k: min(self.state_bits, payload) if payload and k in PAYLOAD_KINDS else self.state_bits
                         for k in GRADED_KINDS}
        self.chip = chip
        self.limit = 2 ** (self.state_bits - 1) / HEADROOM
        # the largest compartment bias the chip stores (m << e, formats.py), less the rounding at e_max
        self.bias_limit = (((1 << (chip.bias_mant_bits - 1)) - 1) << chip.bias_exp_max) - (1 << chip.bias_exp_max)
        self.input_static = input_static
        self.procs: dict[str, Process] = {}
        self.scale: dict[str, np.ndarray] = {}

    # -- scales and unit classes ------------------------------------------------------------

    def _value_scales(self) -> None:
        """Propagate the pending positive scale of every graded value through the graph."""
        for fn in self.fg.nodes.values():
            src = self.scale.get(fn.sources[0], np.float64(1.0)) if fn.sources else np.float64(1.0)
            if fn.kind == "scale":
                factor = f64(fn.node.scale) if hasattr(fn.node, "scale") else np.float64(1.0)
                if np.any(factor <= 0):
                    raise NIRError(f"node {fn.name!r}: Scale factors must be positive to fold into thresholds")
                self.scale[fn.name] = np.broadcast_to(src * factor, fn.out_shape) if factor.ndim else src * factor
            elif fn.kind == "avgpool":
                k = pair(fn.node.kernel_size)
                self.scale[fn.name] = pooled(src, fn) / (k[0] * k[1])
            elif fn.kind in ("maxpool", "sumpool"):
                self.scale[fn.name] = pooled(src, fn)
            elif fn.kind == "flatten":
                self.scale[fn.name] = np.reshape(np.broadcast_to(src, fn.in_shape), fn.out_shape) \
                    if np.ndim(src) else src
            elif fn.kind == "dsmm":
                self.scale[fn.name] = self.scale.get(fn.operands[0], np.float64(1.0))
            elif fn.kind == "attngate":   # the gated value keeps its input's unit
                if np.ndim(src):
                    raise NIRError(f"node {fn.name!r}: attention gates need one scale for the whole input")
                self.scale[fn.name] = src
            else:
                self.scale[fn.name] = np.float64(1.0)
            self.scale[fn.name] = compact(self.scale[fn.name])
            if len(fn.sources) > 1:
                first = self.scale.get(fn.sources[0], 1.0)
                for s in fn.sources[1:]:
                    if not np.allclose(self.scale.get(s, 1.0), first):
                        raise NIRError(f"node {fn.name!r}: it sums values with different folded scales "
                                       f"({fn.sources[0]!r}, {s!r}); the chip cannot add them without multiplying")

    def _is_spikes(self, name: str) -> bool:
        """True when the value is binary spikes (a neuron's output, or a reshape / max-pool of one)."""
        fn = self.fg.nodes[name]
        if fn.kind in NEURON_KINDS:
            return True
        if fn.kind in ("flatten", "maxpool", "gate") or (fn.kind == "scale" and len(fn.sources) == 1
                                                 and np.all(np.asarray(self.scale.get(name, 1.0)) == 1)):
            return len(fn.sources) == 1 and self._is_spikes(fn.sources[0])
        return False

    def _classes(self) -> dict[str, int]:
        fg = self.fg
        uf = Classes(fg.nodes)
        for fn in fg.nodes.values():
            for s in fn.sources[1:]:
                uf.union(s, fn.sources[0])
            if fn.kind in ("scale", "maxpool", "sumpool", "avgpool", "flatten", "attngate", "gate"):
                uf.union(fn.name, fn.sources[0])
            if fn.kind == "dsmm" and not self._counts(fn.name):
                uf.union(fn.name, fn.operands[0])
        members: dict[str, list[str]] = {}
        for n in fg.nodes:
            members.setdefault(uf.find(n), []).append(n)
        consumers = fg.consumers()
        exps = {}
        for _root, names in members.items():
            if all(self._is_spikes(n) for n in names):
                exps.update({n: 0 for n in names})  # spikes are 0/1: unit 1
                continue
            if any(self._is_spikes(n) or self._counts(n) for n in names):
                # spikes summed into a stream (Spikformer's residuals) or coincidence counts:
                # small integers, exact in unit 1; a finer unit would misread the spikes' 1s
                exps.update(self._unit_class(names))
                continue
            peak = max(self.peaks.get(n, 0.0) / float(np.min(self.scale.get(n, 1.0))) for n in names)
            limit = (2 ** (INPUT_BITS - 1) - 1) if names == ["input"] else self.limit
            e = exponent_for(peak, limit)
            # the biases summed into this class's compartments must fit the chip's bias format
            biases = sum(self._peak_bias(n) for n in names)
            if biases > 0:
                e = max(e, exponent_for(biases, self.bias_limit))
            # a neuron reading this class needs its threshold inside the state range
            for n in names:
                for c in consumers[n]:
                    cn = fg.nodes[c]
                    if cn.kind in NEURON_KINDS:
                        gain = self._gain(cn) * float(np.min(self.scale.get(n, 1.0)))
                        real = self._neuron_values(cn)
                        vth = float(np.max(real["v_threshold"]))
                        e = max(e, math.ceil(math.log2(max(vth, 1e-30) / (gain * self.limit))))
                        # and its compartment bias inside the chip's bias format
                        bias = float(np.max(np.abs(real["bias"])))
                        if bias > 0:
                            e = max(e, exponent_for(bias / gain, self.bias_limit))
                        if cn.kind == "softif":
                            # no leak: a membrane driven below 0 integrates for all T steps (the soft reset
                            # keeps it in [0, theta) only for inputs in [0, theta]), so T peaks must fit.
                            # (A plain IF keeps the per-step unit: one that drains past its state over T is
                            # refused on its calibration data, tests/cli/test_cli_saturation.py.)
                            s_min = float(np.min(self.scale.get(n, 1.0)))
                            drive = (float(np.max(np.abs(real["v_init"]))) + vth + self.T * bias) / gain \
                                + self.T * self.peaks.get(n, 0.0) * len(cn.sources)
                            e = max(e, exponent_for(drive / s_min, sat_limit(self.state_bits)))
            for n in names:
                exps[n] = e
        return exps

    def _peak_bias(self, name: str) -> float:
        """The largest |bias| of a conv / affine node (0 for any other node or no bias)."""
        fn = self.fg.nodes[name]
        bias = getattr(fn.node, "bias", None) if fn.kind in ("conv", "dense") else None
        return float(np.max(np.abs(f64(bias)))) if bias is not None and np.size(bias) else 0.0

    def _counts(self, name: str) -> bool:
        """True for integer counts: a dual-spike product of two binary operands (Spikformer's K V^T, Q^T K),
        a running spike counter, or a product of spikes and counters (the MST's cumulative product)."""
        fn = self.fg.nodes[name]
        return fn.kind == "counter" or (fn.kind == "dsmm" and all(
            self._is_spikes(o) or self.fg.nodes[o].kind == "counter" for o in fn.operands))

    def _unit_class(self, names: list[str]) -> dict[str, int]:
        """Exponent 0 for a class of integer-valued members (spikes, their sums, counts)."""
        peak = max(self.peaks.get(n, 0.0) / float(np.min(self.scale.get(n, 1.0))) for n in names)
        if peak > self.limit:
            raise NIRError(f"value {names[0]!r} (spike sums or counts) peaks at {peak:.0f}, beyond the "
                           f"{self.state_bits}-bit state range")
        return {n: 0 for n in names}

    @staticmethod
    def _neuron_values(fn) -> dict[str, np.ndarray]:
        """A neuron node's real ``v_threshold``, ``v_init``, ``bias`` (0 where NIR's node has none) and ``r``
        (the soft-reset IF extension's in its metadata, ``r = 1``)."""
        if fn.kind in ("softif", "rateif"):
            meta = fn.node.metadata
            return {"v_threshold": f64(meta["v_threshold"]), "v_init": f64(meta["v_init"]),
                    "bias": f64(meta["bias"]), "r": np.float64(1.0)}
        return {"v_threshold": f64(fn.node.v_threshold), "v_init": np.float64(0.0), "bias": np.float64(0.0),
                "r": f64(fn.node.r)}

    def _gain(self, fn) -> float:
        """Input gain of a neuron per step: ``k r`` for LIF (k = dt/tau), ``r`` for IF (and the soft-reset IF)."""
        r = float(np.max(self._neuron_values(fn)["r"]))
        if fn.kind in ("if", "softif", "rateif"):
            return r
        return self.fg.dt / float(np.max(f64(fn.node.tau))) * r

    # -- processes ---------------------------------------------------------------------------

    def build(self) -> ProcessGraph:
        """The integer process graph, in the flat graph's order."""
        for fn in self.fg.nodes.values():
            if fn.kind in UNSUPPORTED:
                raise NIRError(f"node {fn.name!r}: {UNSUPPORTED[fn.kind]}")
        self._value_scales()
        self.exp = self._classes()
        for fn in track(self.fg.nodes.values(), "lower", unit="node"):
            self.procs[fn.name] = self.RULES[fn.kind](self, fn)
        for p in self.procs.values():
            p.exponent = self.exp.get(p.name, 0)
            if not p.spiking:
                p.scale = self.scale.get(p.name, 1.0)
            ins = [self.procs[s] for s in list(p.sources) + list(p.operands)]
            p.static = (p.kind == "input" and self.input_static) or (
                p.kind != "neuron" and p.kind != "input" and bool(ins) and all(i.static for i in ins)
                and getattr(p.attrs, "running", "none") == "none")   # a counter changes every step
        out = self.fg.output
        if len(out) != 1:
            self.procs["readout"] = Process("readout", "sum", list(out), self.fg.nodes[out[0]].out_shape,
                                            attrs=SumAttrs(out_bits=self.out_bits["sum"]))
            self.procs["readout"].exponent = self.exp[out[0]]
            out = ["readout"]
        return ProcessGraph(self.procs, out[0], self.T, self.fg.nodes["input"].out_shape, self.input_static,
                            dict(self.fg.metadata))

    def _input(self, fn):
        return Process(fn.name, "input", [], fn.out_shape, attrs=InputAttrs(bits=INPUT_BITS))

    def _synapse(self, fn, weight, bias, op: str, **geometry):
        src = fn.sources[0]
        graded = not self._is_spikes(src)
        e_out = self.exp[fn.name]
        e_in = self.exp[src] if graded else 0
        if graded:
            s_in = self.scale.get(src, np.float64(1.0))
            if np.ndim(s_in):
                per_feature = np.asarray(s_in).reshape(s_in.shape[0], -1)[:, 0] if weight.ndim == 4 else np.ravel(s_in)
                shape = (1, -1, 1, 1) if weight.ndim == 4 else (1, -1)
                if weight.ndim == 4 and geometry.get("groups", 1) > 1:
                    raise NIRError(f"node {fn.name!r}: a grouped conv on a scaled graded input is not supported")
                weight = weight * per_feature.reshape(shape)
            else:
                weight = weight * float(s_in)
        weight = weight * 2.0 ** (e_in - e_out)  # integers in the output's unit
        mant, shift = quantize_mantissas(weight, self.weight_bits)
        b = (np.round(f64(bias) / 2.0 ** e_out).astype(np.int64) if bias is not None
             else np.zeros(mant.shape[0], np.int64))
        return Process(fn.name, "synapse", list(fn.sources), fn.out_shape, params={"weight": mant, "bias": b},
                       attrs=SynapseAttrs(op, int(shift), bool(graded), self.weight_bits, **geometry,
                                          out_bits=self.out_bits["synapse"]))

    def _conv(self, fn):
        w = f64(fn.node.weight)
        groups = int(np.asarray(fn.node.groups))
        hint = (fn.node.metadata or {}).get("sresformer.groups")
        if groups == 1 and hint is not None:
            grouped = groups_of_dense(w, int(hint))
            if grouped is not None:
                w, groups = grouped, int(hint)
        if isinstance(fn.node.padding, str):
            raise NIRError(f"node {fn.name!r}: string padding {fn.node.padding!r} is not supported; give numbers")
        bias = None if fn.node.bias is None else np.broadcast_to(f64(fn.node.bias), (w.shape[0],))
        return self._synapse(fn, w, bias, "conv", stride=pair(fn.node.stride), padding=pair(fn.node.padding),
                             dilation=pair(fn.node.dilation), groups=groups)

    def _dense(self, fn):
        bias = f64(fn.node.bias) if isinstance(fn.node, nir.Affine) else None
        return self._synapse(fn, f64(fn.node.weight), bias, "dense")

    def _neuron(self, fn):
        node, real = fn.node, self._neuron_values(fn)
        if fn.kind == "softif" and not self.chip.subtract_reset:
            raise NIRError(f"node {fn.name!r}: {self.chip.name} resets its neurons to 0 (no subtract_reset), and the "
                           "converted QCFS neuron subtracts its threshold; use --chip loihi2")
        for key in ("v_leak", "v_reset"):
            if hasattr(node, key) and np.any(f64(getattr(node, key)) != 0):
                raise NIRError(f"node {fn.name!r}: {key} must be 0 on the chip model (got non-zero values)")
        s_in = self.scale.get(fn.sources[0], np.float64(1.0))
        shift = self._in_shift(fn, real)
        unit = self._gain(fn) * 2.0 ** (self.exp[fn.sources[0]] - shift) * np.broadcast_to(s_in, fn.in_shape)
        as_int = lambda key: np.round(np.broadcast_to(real[key], fn.in_shape) / unit).astype(np.int64)  # noqa: E731
        params = {"vth": as_int("v_threshold")}
        vth = params["vth"]
        if np.any(vth < 1) or np.any(vth >= 2 ** (self.state_bits - 1)):
            raise NIRError(f"node {fn.name!r}: its threshold does not fit the {self.state_bits}-bit membrane "
                           "at the calibrated input range")
        unity = 1 << self.decay_bits   # decays in units of 2**-decay_bits (the chip's resolution)
        dv = 0 if fn.kind in ("if", "softif") else int(round(unity * self.fg.dt / float(np.max(f64(node.tau)))))
        if not 0 <= dv <= unity:
            raise NIRError(f"node {fn.name!r}: dt/tau = {dv / unity:.3f} is outside [0, 1]")
        if fn.kind == "softif":   # the converted QCFS neuron: v0 and bias in the membrane's unit
            params["v0"] = as_int("v_init")
            params["bias"] = self._neuron_bias(fn, real["bias"] / unit)
        for key, v in params.items():
            if v.size > 1 and np.all(v == v.flat[0]):
                params[key] = v.reshape(-1)[:1]
        reset = "subtract" if fn.kind == "softif" else "zero"
        return Process(fn.name, "neuron", list(fn.sources), fn.out_shape, params=params,
                       attrs=NeuronAttrs(du=unity, dv=dv, state_bits=self.state_bits, decay_bits=self.decay_bits,
                                         reset=reset, in_shift=shift))

    def _in_shift(self, fn, real: dict) -> int:
        """The input's power of two for a soft-reset IF reading coincidence counts (unit 1: a threshold of
        a few counts would round coarsely): as large as keeps its membrane, ``T`` steps of its peak input
        plus threshold and initial membrane, in the state range, and at most the largest weight
        (``weight_exp_max`` times a ``weight_bits`` mantissa) of the synapse that brings the counts."""
        src = fn.sources[0]
        if fn.kind != "softif" or self.exp[src] != 0 or not self._reads_counts(src):
            return 0
        s_min = float(np.min(self.scale.get(src, 1.0)))
        drive = (float(np.max(np.abs(real["v_init"]))) + float(np.max(real["v_threshold"]))
                 + self.T * float(np.max(np.abs(real["bias"])))) / s_min + self.T * self.peaks.get(src, 0.0) / s_min
        room = int(math.floor(math.log2(sat_limit(self.state_bits) / max(drive, 1.0))))
        return max(0, min(room, self.chip.weight_exp_max + self.chip.weight_bits - 2))

    def _reads_counts(self, name: str) -> bool:
        """True when value ``name`` is a coincidence-count product, or a single-source Scale of one."""
        fn = self.fg.nodes[name]
        if fn.kind == "scale" and len(fn.sources) == 1:
            return self._reads_counts(fn.sources[0])
        return self._counts(name)

    def _neuron_bias(self, fn, bias: np.ndarray) -> np.ndarray:
        """A compartment bias (membrane units) in the chip's bias format ``m << e`` (``bias_mant_bits``-bit
        signed ``m``, ``0 <= e <= bias_exp_max``; one ``e`` per layer, Lava's LIF ``bias_exp``)."""
        mant = (1 << (self.chip.bias_mant_bits - 1)) - 1
        peak = float(np.max(np.abs(bias))) if bias.size else 0.0
        e = max(0, exponent_for(peak, mant))
        if e > self.chip.bias_exp_max:
            raise NIRError(f"node {fn.name!r}: its bias peaks at {peak:.0f} membrane units, beyond the chip's bias "
                           f"format ({self.chip.bias_mant_bits}-bit mantissa << {self.chip.bias_exp_max})")
        return (np.round(bias / 2.0 ** e) * 2 ** e).astype(np.int64)

    def _scale(self, fn):
        alias = len(fn.sources) == 1
        return Process(fn.name, "sum", list(fn.sources), fn.out_shape,
                       attrs=SumAttrs(alias, out_bits=self.out_bits["sum"]))

    def _dsmm(self, fn):
        """A product of two dynamic operands, in what the chip has (``hw_sim.prodneuron.attention_lowering``):
        ``dsmm`` on a core that holds a dynamic operand, else ``prodmm`` (product compartments) whose
        terms sum in the reader's dendrite; when the value is not read by exactly one neuron (another
        product's operand, several readers, the output) a graded integrator ``sum`` under the node's
        name holds it, fed by the ``prodmm`` ``<name>.terms``."""
        meta = fn.node.metadata
        form, heads = str(meta["form"]), int(meta["heads"])
        lowering = attention_lowering(self.chip)
        if lowering == "operand-memory":
            return Process(fn.name, "dsmm", [], fn.out_shape, operands=fn.operands,
                           attrs=DsmmAttrs(form, heads, out_bits=self.out_bits["dsmm"]))
        if lowering == "none":
            raise NIRError(f"{self.chip.name} has no product neurons or graded spikes: DSSA's products cannot run "
                           f"on it (node {fn.name!r}); use loihi2")
        prod = Process(fn.name, "prodmm", [], fn.out_shape, operands=fn.operands,
                       attrs=ProdmmAttrs(form, heads, out_bits=self.out_bits["prodmm"]))
        readers, todo, consumers = [], [fn.name], self.fg.consumers()
        while todo:   # the real readers, through single-source Scale pass-throughs
            for c in consumers[todo.pop()]:
                cn = self.fg.nodes[c]
                (todo if cn.kind == "scale" and len(cn.sources) == 1 else readers).append(c)
        if len(readers) == 1 and self.fg.nodes[readers[0]].kind in NEURON_KINDS and fn.name not in self.fg.output:
            return prod
        terms = prod.name = f"{fn.name}.terms"
        self.exp[terms], self.scale[terms] = self.exp.get(fn.name, 0), self.scale.get(fn.name, 1.0)
        self.procs[terms] = prod
        return Process(fn.name, "sum", [terms], fn.out_shape, attrs=SumAttrs(False, out_bits=self.out_bits["sum"]))

    def _sumpool(self, fn):
        """Sum pooling; an average pool too (its ``1/k^2`` rides on the value's scale)."""
        node = fn.node
        attrs = SumPoolAttrs(pair(node.kernel_size), pair(node.stride), pair(node.padding),
                             out_bits=self.out_bits["sumpool"])
        return Process(fn.name, "sumpool", list(fn.sources), fn.out_shape, attrs=attrs)

    def _maxpool(self, fn):
        meta = fn.node.metadata
        attrs = MaxPoolAttrs(pair(meta["kernel_size"]), pair(meta["stride"]), pair(meta["padding"]))
        if np.any(np.asarray(self.scale.get(fn.sources[0], 1.0)) <= 0):
            raise NIRError(f"node {fn.name!r}: max-pooling needs a positive scale on its input")
        return Process(fn.name, "maxpool", list(fn.sources), fn.out_shape, attrs=attrs)

    def _flatten(self, fn):
        """A reshape; NIR sums a node's inputs, so several sources first meet in a sum ``<name>.sum`` (a
        flatten process reshapes one value)."""
        if len(fn.sources) == 1:
            return Process(fn.name, "flatten", list(fn.sources), fn.out_shape, attrs=FlattenAttrs())
        total = f"{fn.name}.sum"
        self.exp[total], self.scale[total] = self.exp.get(fn.name, 0), self.scale.get(fn.sources[0], 1.0)
        self.procs[total] = Process(total, "sum", list(fn.sources), fn.in_shape,
                                    attrs=SumAttrs(False, out_bits=self.out_bits["sum"]))
        return Process(fn.name, "flatten", [total], fn.out_shape, attrs=FlattenAttrs())

    def _attngate(self, fn):
        """MA gates on the embedded processor: input unit folded into the first-layer weights (gate.py)."""
        src = fn.sources[0]
        unit = 2.0 ** self.exp[src] * float(self.scale.get(src, 1.0))
        params, attrs = gate_params(fn.node.metadata, fn.in_shape, unit)
        return Process(fn.name, "attngate", list(fn.sources), fn.out_shape, params=params, attrs=attrs)

    def _gate(self, fn):
        """The random spike gate (MST): only on spikes, so a dropped spike is simply not sent."""
        if len(fn.sources) != 1 or not self._is_spikes(fn.sources[0]):
            raise NIRError(f"node {fn.name!r}: a spike mask must read exactly one spiking value")
        op = fn.module
        return Process(fn.name, "gate", list(fn.sources), fn.out_shape,
                       attrs=GateAttrs(float(op.ratio), int(op.seed), int(op.gate_id)))

    #: flat-graph node kind -> the method that lowers it (the unsupported kinds are refused first)
    RULES = {"input": _input, "conv": _conv, "dense": _dense, "lif": _neuron, "if": _neuron, "softif": _neuron,
             "rateif": lower_rate_neuron, "counter": lower_counter,
             "scale": _scale,
             "dsmm": _dsmm, "sumpool": _sumpool, "avgpool": _sumpool, "maxpool": _maxpool, "flatten": _flatten,
             "attngate": _attngate, "gate": _gate}


def lower(fg: FlatGraph, peaks: dict[str, float], T: int, chip: Chip | str = "loihi2",
          input_static: bool = True, notes: list | None = None) -> ProcessGraph:
    """The integer process graph of ``fg`` given calibrated ``peaks`` (see :func:`value_ranges`), with
    the bit widths of ``chip`` (a :class:`~hw_sim.chips.Chip`, or a name / TOML path for ``load_chip``),
    its synapses brought within the chip's bias and weight-exponent formats (:mod:`.formats`); the
    per-layer rescale notes are appended to ``notes`` when given."""
    chip = chip if isinstance(chip, Chip) else load_chip(chip)
    pg = Lowering(fg, peaks, T, chip, input_static).build()
    found = fit_formats(pg, chip)
    if notes is not None:
        notes.extend(found)
    return pg
