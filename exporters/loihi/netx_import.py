"""A lava-dl netx network (``.net``) as our integer process graph, with netx's own integers.

:func:`read_netx` reads the file (validated by :mod:`exporters.loihi.netx_read`) and builds
a :class:`hw_sim.processes.ProcessGraph` that computes, spike for spike, what Lava's
bit-accurate netx simulation computes. No calibration: weights, thresholds, biases and
decays are netx's integers. ``NETX.md`` states netx's arithmetic against ours (the 6-bit
MSB alignment of input, threshold and bias, ``v > vth``, the int16 ``a_in``, dense
``optimize_weight_bits``); here it is applied in reverse, per layer:

- synapse: ``shift = 6`` (``a << 6``), weights as netx's synapse applies them (conv: as
  stored; dense: :func:`dense_weights`), ``bias = 64 * bias`` (netx's ``bias_exp = 6``);
- neuron: ``du = iDecay`` (netx passes ``du = iDecay - 1``, Lava decays by ``du + 1``),
  ``dv = vDecay``, ``vth = 64 * vThMant + 1`` (netx spikes on ``v > vThMant << 6``, we on
  ``v >= vth``: equal for integers), a 24-bit membrane (Lava's ``uv_bitwidth``).

Where netx's arithmetic differs from ours the difference is refused in one line unless it
provably cannot act (worst-case bounds over the sample's ``T`` steps): a bias with a
current decay (netx adds it to ``v``, we to ``u``), a synaptic input that could leave
Lava's int16 ``a_in``, a current that could wrap at 24 bits, a voltage that could reach
``-2**23`` (Lava clips to ``-(2**23 - 1)``, we to ``-2**23``), a refractory delay above 1
(Loihi's minimum; netx's LIF has none), synaptic delays, weights netx would clip.

The input layer. In lava-dl a netx ``input`` layer with a neuron is a CUBA layer whose
input the host writes: ``weight * frame + bias`` (one scalar weight and bias, netx's
``Input.transform``). It becomes ``input`` (the host's integers ``q = round(x)``, exponent 0,
as wide as Lava's int16 ``a_in`` allows) -> an elementwise synapse (a 1x1 depthwise conv,
``groups = C``, one weight per channel, netx's bias) -> ``neuron`` (a vector input layer ``[N]``
is held as ``[N, 1, 1]``). That synapse reads only the host's input, so it is static and
applied by the host: what the host injects is
``64 (weight q + bias)`` (no synapse memory on the chip). lava-dl's PilotNet host sends
``trunc(weight (2 p - 1) + bias)`` for pixels ``p`` in ``[0, 1]``; that preprocessing is the
host's, outside the chip: feed frames in host units. An ``input`` layer without a neuron
(our ``--target netx`` files) is the host's graded input itself, read by the first synapse
(``sresformer.input_exponent`` / ``input_bits`` when our writer made the file, else 8 bits).

``pool`` layers (slayer's sum-pool blocks; netx 0.6 raises NotImplementedError on them) are
depthwise convs with the pool's tap weights on the same arithmetic; ``flatten`` is C-major
as netx's ``transpose([2, 1, 0]).flatten()`` of Lava's ``[W, H, C]``.

Time. Every sample starts from zero state and runs ``T`` steps (the file's ``tSample``), all
layers inside each step: Lava's netx run with ``reset_interval = T`` and a ``reset_offset`` that
resets each layer when its first input of a sample arrives (layer ``i`` lags ``i`` steps behind
an input neuron layer, ``i + 1`` behind the host's graded input, as ``NETX.md`` describes).

The output. A last layer that can spike within ``T`` steps is read out as its spikes
(rates). A non-spiking integrator readout (PilotNet's: ``vDecay`` 0, ``iDecay`` 4096, a
threshold ``v`` cannot reach within ``T`` steps, checked) is read as its voltage: ``output``
is a pass-through ``sum`` alias of its synapse, whose mean over ``T`` is ``v_T / T`` in
units of ``2**-6`` weight LSBs (``exponent = -6``); real outputs are ``v_T / (64 T)``.
lava-dl's PilotNet decoder divides ``v_T`` by ``T * 32 * 64``: our real output / 32.
"""

from __future__ import annotations

import math
import os

import numpy as np

from hw_sim.processes import Process, ProcessGraph

from .formats import fit_formats
from .netx import A_IN_MAX, ACT_SHIFT, BIAS_MANT_MAX
from .netx_read import NetxFile, NetxImportError, NetxLayer, read_file

STATE_BITS = 24        # Lava PyLifModelBitAcc: u, v are 24-bit (uv_bitwidth = 24)
DECAY_BITS = 12        # Lava PyLifModelBitAcc: decays in 1/4096 (decay_shift = 12)
UNITY = 1 << DECAY_BITS   # a decay of 4096/4096 clears the state in one step
ALIGN = 2 ** ACT_SHIFT    # one weight LSB in membrane LSBs (netx's 6-bit MSB alignment)
INPUT_WEIGHT_DEFAULT = 64  # netx create_input: the input transform's weight when the file has none
V_LIMIT = 2 ** 23 - 1  # Lava clips v to +-(2**23 - 1); u wraps beyond 2**23
WEIGHT_BITS = 8        # netx optimize_weight_bits: "standard 8 bit signed weight matrix"
DEFAULT_INPUT_BITS = 8  # graded host input of a file that does not say (netx: a run-time option)


def dense_weights(w: np.ndarray, where: str) -> np.ndarray:
    """The integer weights a netx dense layer applies: ``w`` itself, or a one-line refusal.

    netx's ``optimize_weight_bits`` rescales ``w`` by ``2**s`` (``s`` from the largest
    magnitude and the sign mode) and sets ``weight_exp = -s``; Lava's Dense then clips to
    its sign mode's 8-bit range, truncates to ``num_weight_bits`` and shifts the
    accumulation right by ``s``. That returns exactly ``sum w * spikes`` when every scaled
    weight survives the clip and the truncation, which is checked here by redoing the
    steps; otherwise (netx's own clipping of weights beyond 254 / -256, or lost bits) refuse.
    """
    hi, lo = int(w.max()), int(w.min())
    if hi == 0 and lo == 0:
        raise NetxImportError(f"netx file: {where}: all weights are zero (netx's optimize_weight_bits divides "
                              "by the largest weight)")
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):
        raise NetxImportError(f"netx file: {where}: weights {lo}..{hi} exceed what netx fits in a Loihi synapse "
                              "(it would clip them)")
    if hi < 0:          # netx's sign modes: inhibitory, excitatory, else mixed (signed)
        signed, scale = 0, -256 / lo
    elif lo >= 0:
        signed, scale = 0, 255 / hi
    else:
        signed, scale = 1, min(127 / hi if hi > 0 else math.inf, -128 / lo)
    s = math.floor(math.log2(scale)) + signed
    n = 8
    while n > 0 and np.any(w % (2 ** n)):   # the trailing zero bits all weights share
        n -= 1
    num_bits = 8 - s - (n - signed)
    if s < 0:
        raise NetxImportError(f"netx file: {where}: weights up to {max(hi, -lo)} need a negative netx weight "
                              "scale (netx shifts by it as a left shift); not supported")
    scaled = w.astype(np.int64) << s
    # Lava's Dense: sign mode of the scaled weights, clip to its 8-bit range, truncate low bits
    mixed = scaled.min() < 0 < scaled.max()
    sign = -1 if scaled.max() <= 0 and scaled.min() < 0 else 1
    mag = scaled * sign
    lo_c, hi_c = (-256, 255) if mixed else (0, 255)
    drop = 8 - num_bits + int(mixed)
    if drop < 0:
        raise NetxImportError(f"netx file: {where}: netx would give these weights {num_bits} bits, more than a "
                              "Loihi synapse has")
    kept = ((np.clip(mag, lo_c, hi_c) >> drop) << drop) * sign
    if not np.array_equal(kept, scaled):
        raise NetxImportError(f"netx file: {where}: Lava's synapse would clip or truncate these weights "
                              f"({lo}..{hi} scaled by 2**{s}); not supported")
    return w.astype(np.int64)


def _worst_a(w: np.ndarray, graded_max: int | None) -> int:
    """Worst ``|a_in|`` of one step: binary spikes: ``max(sum W+, sum |W-|)`` per output; graded
    input of magnitude at most ``graded_max``: ``sum |W| * graded_max``."""
    w = w.reshape(w.shape[0], -1)
    if graded_max is None:
        return int(max(np.clip(w, 0, None).sum(1).max(), (-np.clip(w, None, 0)).sum(1).max()))
    return int(np.abs(w).sum(1).max()) * graded_max


def _series(d: int, T: int) -> float:
    """``sum_{k<T} (1 - d/4096)**k``: how many steps' worth of input a decaying state can hold."""
    return float(T) if d == 0 else min(float(T), UNITY / d)


class _Builder:
    """Turns the validated layers into processes, one netx layer at a time."""

    def __init__(self, nf: NetxFile, T: int, name: str):
        self.nf, self.T, self.name = nf, T, name
        self.procs: dict[str, Process] = {}
        self.last: str | None = None         # the value the next layer reads
        self.shape: tuple[int, ...] = ()
        self.graded_max: int | None = None   # the last value's magnitude when graded (host input), else spikes
        self.flatten_next = False
        self.flatten_index = 0
        self.vector = False                  # the last layer is a vector held as [N, 1, 1]
        self.neurons: list[str] = []
        self.reach = True                    # the last neuron layer can reach its threshold within T steps
        self.last_layer = None
        # a frame held for the sample's T steps (lava-dl's tutorials); our writer records its own choice
        self.static = bool(nf.attrs.get("sresformer.input_static", True))

    def add(self, p: Process) -> None:
        self.procs[p.name] = p
        self.last, self.shape = p.name, tuple(p.out_shape)

    # -- layers ---------------------------------------------------------------------------------

    def input(self, layer: NetxLayer) -> None:
        shape = layer.shape
        if layer.neuron is None:
            bits = self.nf.attrs.get("sresformer.input_bits", DEFAULT_INPUT_BITS)
            exponent = self.nf.attrs.get("sresformer.input_exponent", 0)
            if not 2 <= bits <= 16 or not -64 <= exponent <= 64:
                raise NetxImportError(f"netx file: root attributes: input bits {bits} / exponent {exponent} out of "
                                      "range (2..16 bits, exponent -64..64)")
            self.add(Process("input", "input", [], shape, attrs={"bits": int(bits)}, exponent=int(exponent),
                             static=self.static))
            self.graded_max = 2 ** (bits - 1) - 1
            return
        if len(shape) == 1:   # a vector of input neurons, held as [N, 1, 1] for the elementwise synapse
            shape, self.vector = (shape[0], 1, 1), True
        w = INPUT_WEIGHT_DEFAULT if layer.weight is None else self._scalar(layer, layer.weight, "weight")
        b = 0 if layer.bias is None else self._scalar(layer, layer.bias, "bias")
        # the host integers q: as wide as keeps the injected w q + b inside Lava's int16 a_in
        bits = 16
        while bits > 2 and abs(w) * (2 ** (bits - 1) - 1) + abs(b) > A_IN_MAX:
            bits -= 1
        if abs(w) * (2 ** (bits - 1) - 1) + abs(b) > A_IN_MAX:
            raise NetxImportError(f"netx file: layer {layer.index}: input weight {w} and bias {b} overflow Lava's "
                                  "16-bit synaptic input even for 2-bit host values")
        self.add(Process("input", "input", [], shape, attrs={"bits": bits}, exponent=0, static=self.static))
        C = shape[0]
        mant, k = w, 0   # the host's weight as an 8-bit mantissa times 2**k: exact when w = m 2**k, |m| <= 127
        while abs(mant) > 2 ** (WEIGHT_BITS - 1) - 1 and mant % 2 == 0:
            mant, k = mant // 2, k + 1
        syn = self._synapse(layer, np.full((C, 1, 1, 1), mant, np.int64), np.full(C, b, np.int64), "conv",
                            graded=True, geometry={"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1),
                                                   "groups": C}, worst=abs(w) * (2 ** (bits - 1) - 1) + abs(b),
                            shift=ACT_SHIFT + k)
        syn[0].static = self.static   # reads only the host's input: computed once, applied by the host
        self._neuron(layer, syn)

    @staticmethod
    def _scalar(layer: NetxLayer, v: np.ndarray, key: str) -> int:
        if v.size != 1:   # netx's create_input reads np.ravel(...)[0] only
            raise NetxImportError(f"netx file: layer {layer.index}/{key}: the input layer's {key} must be one "
                                  f"number (netx reads only the first of {v.size})")
        return int(v.reshape(-1)[0])

    def conv(self, layer: NetxLayer) -> None:
        self._no_flatten(layer)
        w = layer.weight
        if w.ndim == 5 and w.shape[-1] == 1:   # slayer's [out, in, kh, kw, 1]; netx reshapes it away
            w = w.reshape(w.shape[:4])
        if w.ndim != 4:
            raise NetxImportError(f"netx file: layer {layer.index}/weight has shape {w.shape}; a conv needs "
                                  "[out, in/groups, kh, kw]")
        g = layer.geometry
        self._check_channels(layer, w, g["groups"])
        self._conv_layer(layer, w, g["groups"])

    def pool(self, layer: NetxLayer) -> None:
        self._no_flatten(layer)
        if len(self.shape) != 3:
            raise NetxImportError(f"netx file: layer {layer.index} (pool) reads a layer of shape {self.shape}; "
                                  "it needs [C, H, W]")
        w = layer.weight.reshape(-1, *layer.weight.shape[-2:]) if layer.weight.ndim >= 2 else None
        if w is None or w.shape[0] != 1:
            raise NetxImportError(f"netx file: layer {layer.index}/weight has shape {layer.weight.shape}; a pool "
                                  "needs one [kh, kw] window of tap weights")
        C = self.shape[0]
        self._conv_layer(layer, np.repeat(w[None], C, 0).reshape(C, 1, *w.shape[-2:]), C)

    def dense(self, layer: NetxLayer) -> None:
        n_out = int(np.prod(layer.shape))
        w = layer.weight.reshape(n_out, -1) if layer.weight.ndim == 1 else layer.weight
        if w.ndim != 2 or w.shape[0] != n_out:
            raise NetxImportError(f"netx file: layer {layer.index}/weight has shape {layer.weight.shape}; a dense "
                                  f"layer of {n_out} neurons needs [{n_out}, inputs]")
        n_in = int(np.prod(self.shape))
        if len(self.shape) != 1:
            if not (self.flatten_next or self.vector or self.procs[self.last].kind == "input"):
                raise NetxImportError(f"netx file: layer {layer.index} (dense) reads a layer of shape {self.shape} "
                                      "without a flatten layer between (netx cannot connect them)")
            name = f"layer{self.flatten_index}" if self.flatten_next else f"layer{layer.index}.flatten"
            self.add(Process(name, "flatten", [self.last], (n_in,), attrs={},
                             static=self.procs[self.last].static))
        self.flatten_next = self.vector = False
        if w.shape[1] != n_in:
            raise NetxImportError(f"netx file: layer {layer.index}/weight reads {w.shape[1]} inputs, the layer before "
                                  f"gives {n_in}")
        for key, want in (("inFeatures", n_in), ("outFeatures", n_out)):
            if key in layer.geometry and layer.geometry[key] != want:
                raise NetxImportError(f"netx file: layer {layer.index}/{key} is {layer.geometry[key]}, the weight "
                                      f"says {want}")
        w = dense_weights(w, f"layer {layer.index}/weight")
        syn = self._synapse(layer, w, self._bias(layer, n_out), "dense", graded=self.graded_max is not None)
        self._neuron(layer, syn)

    def flatten(self, layer: NetxLayer) -> None:
        self.flatten_next, self.flatten_index = True, layer.index

    # -- shared parts ---------------------------------------------------------------------------

    def _no_flatten(self, layer):
        if self.vector:
            raise NetxImportError(f"netx file: layer {layer.index} ({layer.type}) reads a vector input layer; it "
                                  "needs [C, H, W]")
        if self.flatten_next:
            raise NetxImportError(f"netx file: layer {layer.index} ({layer.type}) follows a flatten layer; netx "
                                  "flattens only into dense layers")
        if len(self.shape) != 3:
            raise NetxImportError(f"netx file: layer {layer.index} ({layer.type}) reads a layer of shape "
                                  f"{self.shape}; it needs [C, H, W]")

    def _check_channels(self, layer, w, groups):
        c_in = self.shape[0]
        g = layer.geometry
        if c_in % groups or w.shape[1] * groups != c_in or w.shape[0] % groups:
            raise NetxImportError(f"netx file: layer {layer.index}/weight has shape {w.shape} with {groups} groups; "
                                  f"the layer before gives {c_in} channels")
        for key, want in (("inChannels", c_in), ("outChannels", w.shape[0])):
            if key in g and g[key] != want:
                raise NetxImportError(f"netx file: layer {layer.index}/{key} is {g[key]}, the weight says {want}")
        if "kernelSize" in g and tuple(g["kernelSize"]) != tuple(w.shape[2:]):
            raise NetxImportError(f"netx file: layer {layer.index}/kernelSize is {g['kernelSize']}, the weight says "
                                  f"{tuple(w.shape[2:])}")

    def _conv_layer(self, layer, w, groups):
        g = layer.geometry
        _, H, W = self.shape
        (sy, sx), (py, px), (dy, dx) = g["stride"], g["padding"], g["dilation"]
        kh, kw = w.shape[2:]
        if "kernelSize" in g and tuple(g["kernelSize"]) != (kh, kw):
            raise NetxImportError(f"netx file: layer {layer.index}/kernelSize is {g['kernelSize']}, the weight says "
                                  f"{(kh, kw)}")
        ho, wo = (H + 2 * py - dy * (kh - 1) - 1) // sy + 1, (W + 2 * px - dx * (kw - 1) - 1) // sx + 1
        out = (w.shape[0], ho, wo)
        if ho < 1 or wo < 1 or tuple(layer.shape) != out:
            raise NetxImportError(f"netx file: layer {layer.index}/shape is {layer.shape}; its weight, stride, "
                                  f"padding and dilation on {self.shape} give {out}")
        if np.abs(w).max(initial=0) > 2 ** (WEIGHT_BITS - 1) - 1:
            raise NetxImportError(f"netx file: layer {layer.index}/weight holds {int(np.abs(w).max())}, beyond "
                                  f"{WEIGHT_BITS}-bit signed weights")
        geo = {"stride": (sy, sx), "padding": (py, px), "dilation": (dy, dx), "groups": int(groups)}
        syn = self._synapse(layer, w, self._bias(layer, w.shape[0]), "conv", graded=self.graded_max is not None,
                            geometry=geo)
        self._neuron(layer, syn)

    def _bias(self, layer, channels: int) -> np.ndarray:
        if layer.bias is None:
            return np.zeros(channels, np.int64)
        b = layer.bias.reshape(-1)
        if b.size == 1:
            return np.full(channels, int(b[0]), np.int64)
        if b.size != channels:
            raise NetxImportError(f"netx file: layer {layer.index}/bias holds {b.size} values for {channels} "
                                  "channels (one per channel, or one for all)")
        return b.astype(np.int64)

    def _synapse(self, layer, w, bias, op, graded, geometry=None, worst=None,
                 shift=ACT_SHIFT) -> tuple[Process, int]:
        """The layer's synapse process and its worst one-step synaptic input ``|a_in|`` (weight LSBs)."""
        where = f"netx file: layer {layer.index}"
        if layer.has_delay:
            raise NetxImportError(f"{where}: has synaptic delays; the chip model has none (all delays must be 0)")
        if np.abs(w).max(initial=0) > 2 ** (WEIGHT_BITS - 1) - 1:
            raise NetxImportError(f"{where}/weight holds {int(np.abs(w).max())}, beyond {WEIGHT_BITS}-bit signed "
                                  "weights")
        if bias.max(initial=0) > BIAS_MANT_MAX or bias.min(initial=0) < -(BIAS_MANT_MAX + 1):   # 13-bit signed
            raise NetxImportError(f"{where}/bias holds {int(np.abs(bias).max())}, beyond Lava's 13-bit bias_mant")
        a_max = worst if worst is not None else _worst_a(w, self.graded_max)
        if a_max > A_IN_MAX:
            raise NetxImportError(f"{where}: one step's synaptic input can reach {a_max}, beyond Lava's 16-bit a_in "
                                  f"(it would wrap); not supported")
        attrs = {"op": op, "shift": shift, "graded_input": bool(graded), "weight_bits": WEIGHT_BITS,
                 "out_bits": STATE_BITS}   # accumulated in the neuron's 24-bit current
        attrs.update(geometry or {})
        shape = self.shape if layer.type == "input" else (
            tuple(layer.shape) if op == "conv" else (int(np.prod(layer.shape)),))
        syn = Process(f"layer{layer.index}.synapse", "synapse", [self.last], shape,
                      params={"weight": w.astype(np.int64), "bias": bias * ALIGN}, attrs=attrs,
                      exponent=-ACT_SHIFT, static=self.procs[self.last].static)   # static iff what it reads is
        self.add(syn)
        return syn, a_max

    def _neuron(self, layer: NetxLayer, synapse: tuple[Process, int]) -> None:
        """The layer's CUBA neuron, after the checks that netx's arithmetic and ours agree on it."""
        syn, a_max = synapse
        n = layer.neuron
        where = f"netx file: layer {layer.index}/neuron"
        if n.ref_delay > 1:
            raise NetxImportError(f"{where}: refDelay {n.ref_delay} (a refractory period) is not supported; netx's "
                                  "Lava LIF has none, Loihi holds the neuron; only refDelay 0 or 1")
        bias = syn.params["bias"] // ALIGN
        b_pos, b_neg = max(int(bias.max(initial=0)), 0), max(-int(bias.min(initial=0)), 0)
        host_bias = layer.type == "input"   # the host folds the input bias into a_in, Lava's u
        if n.i_decay != UNITY and (b_pos or b_neg) and not host_bias:
            raise NetxImportError(f"{where}: a bias with a current decay (iDecay {n.i_decay} != {UNITY}): netx adds "
                                  "the bias to the voltage, the chip model to the decaying current; not supported")
        u_b = ALIGN * a_max * _series(n.i_decay, self.T)
        if u_b > V_LIMIT:
            raise NetxImportError(f"{where}: its current can reach {u_b:.0f} within {self.T} steps, where Lava wraps "
                                  "it at 24 bits; not supported")
        steps = _series(n.v_decay, self.T)
        extra = 0 if host_bias else ALIGN
        if (u_b + extra * b_neg) * steps > V_LIMIT:
            raise NetxImportError(f"{where}: its voltage can reach -(2**23 - 1) within {self.T} steps, where Lava and "
                                  "the chip model clip it (an import that saturates is not held to netx's spikes); "
                                  "not supported")
        self.reach = (u_b + extra * b_pos) * steps > ALIGN * n.vth_mant
        p = Process(f"layer{layer.index}", "neuron", [syn.name], syn.out_shape,
                    params={"vth": np.array([ALIGN * n.vth_mant + 1], np.int64)},
                    attrs={"du": n.i_decay, "dv": n.v_decay, "state_bits": STATE_BITS, "decay_bits": DECAY_BITS})
        self.add(p)
        self.neurons.append(p.name)
        self.graded_max = None
        self.last_layer = (layer, syn, p)

    def finish(self) -> ProcessGraph:
        if not self.neurons:
            raise NetxImportError("netx file: no layer with neurons (nothing runs on the chip)")
        layer, syn, neu = self.last_layer
        n = layer.neuron
        readout = "spikes"
        out = neu.name
        if not self.reach:
            if n.v_decay != 0 or n.i_decay != UNITY:
                raise NetxImportError(f"netx file: layer {layer.index}: the last layer never reaches its threshold "
                                      "within T steps and its voltage leaks (vDecay or iDecay): no readout we can "
                                      "state exactly")
            readout = "voltage"
            out = "readout"
            self.procs[out] = Process(out, "sum", [syn.name], syn.out_shape,
                                      attrs={"alias": True, "out_bits": STATE_BITS},
                                      exponent=-ACT_SHIFT)
        if len(self.procs[out].out_shape) != 1:
            flat = Process("readout.flatten", "flatten", [out], (int(np.prod(self.procs[out].out_shape)),),
                           attrs={}, exponent=self.procs[out].exponent)
            self.procs[flat.name] = flat
            out = flat.name
        meta = {"source": "lava-dl netx", "netx_file": self.name, "readout": readout,
                "netx_layers": len(self.nf.layers), "neuron_layers": list(self.neurons)}
        in_shape = self.procs["input"].out_shape
        return ProcessGraph(self.procs, out, self.T, tuple(in_shape), self.static, meta)


def read_netx(path: str | os.PathLike, T: int | None = None, chip=None, notes: list | None = None) -> ProcessGraph:
    """The netx file ``path`` as a process graph with netx's integers (see the module docstring).

    ``T``: time steps per sample; default the file's ``simulation/tSample`` (or our writer's
    ``sresformer.T``). Every refusal is a one-line :class:`NetxImportError`. With a ``chip``
    (:class:`hw_sim.chips.Chip`), the graph is brought within its bias and weight-exponent formats
    (:func:`exporters.loihi.formats.fit_formats`; netx's own ``bias_mant << 6`` biases and ``shift = 6``
    synapses already are), the rescale notes appended to ``notes``.
    """
    nf = read_file(path)
    T = int(T or nf.t_sample or nf.attrs.get("sresformer.T") or 0)
    if T <= 0:
        raise NetxImportError(f"netx file {path} does not say how many steps a sample takes (simulation/tSample); "
                              "give --T")
    layers = nf.layers
    if layers[0].type != "input":
        raise NetxImportError(f"netx file: layer 0 is {layers[0].type!r}; netx networks start with an input layer")
    b = _Builder(nf, T, os.path.basename(str(path)))
    b.input(layers[0])
    rules = {"conv": b.conv, "pool": b.pool, "dense": b.dense, "flatten": b.flatten}
    for layer in layers[1:]:
        if layer.type not in rules:
            raise NetxImportError(f"netx file: layer {layer.index} is a second input layer")
        rules[layer.type](layer)
    pg = b.finish()
    if chip is not None:
        found = fit_formats(pg, chip)
        if notes is not None:
            notes.extend(found)
    return pg
