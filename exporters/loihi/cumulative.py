"""Lowering of the converted MST's cumulative product (``convert --product cumulative``) to the chip.

``P_t = C^a_t (C^b_t)^T`` is built from what the lowering already has for products, plus two
node kinds of its own (``hw_sim/ratenorm.py`` states the arithmetic):

- a spike counter (NIR ``sresformer.spike_counter``) is a ``sum`` with ``running`` set: a graded
  integrator compartment that keeps its value (no decay) and sends the count ``C_t`` (or ``C_{t-1}``)
  as a graded spike, unit 1 (counts are small integers);
- each increment term, spikes of one side against the other side's counts, is an ordinary product
  node (``dsmm``; on Loihi 2 ``prodmm`` product compartments, Lava's ProdNeuron) whose terms sum in the
  reading neuron's dendrite;
- the rate-normalised IF (NIR ``soft_reset_if`` with ``rate_normalised``) is a ``neuron`` with
  ``reset='rate'``: a programmable (microcode) neuron, so only on a chip with ``product_neurons``
  (Loihi 2; never Loihi 1). Its threshold ``Theta`` and bias ``beta`` are integers in the membrane's
  unit, as any neuron's; the input's power of two ``in_shift`` is as large as keeps every register
  within ``state_bits`` over ``T`` steps (:func:`hw_sim.ratenorm.register_bound`), and a ``T`` for which
  even ``in_shift = 0`` does not fit is refused in one line naming the largest ``T`` that does.
"""

from __future__ import annotations

import numpy as np

from exporters.nir.convention import NIRError, meta_str
from hw_sim.processes import NeuronAttrs, Process, SumAttrs, sat_limit
from hw_sim.products import form_dims
from hw_sim.ratenorm import max_steps, register_bound

from .units import f64


def lower_counter(low, fn) -> Process:
    """A spike counter node as a running ``sum`` (inclusive ``C_t`` or exclusive ``C_{t-1}``)."""
    if len(fn.sources) != 1 or not low._is_spikes(fn.sources[0]):
        raise NIRError(f"node {fn.name!r}: a spike counter must read exactly one spiking value")
    mode = meta_str(fn.node.metadata["mode"])
    return Process(fn.name, "sum", list(fn.sources), fn.out_shape,
                   attrs=SumAttrs(False, running=mode, out_bits=low.out_bits["sum"]))


def _contraction(low, fn) -> int:
    """The largest contraction length ``k`` of the count products this neuron reads (through Scales)."""
    ks, todo = [], list(fn.sources)
    while todo:
        n = low.fg.nodes[todo.pop()]
        if n.kind == "scale":
            todo.extend(n.sources)
        elif n.kind == "dsmm" and low._counts(n.name):
            meta = n.node.metadata
            dyn, spk = (low.fg.nodes[o].out_shape for o in n.operands)
            ks.append(form_dims(str(meta["form"]), int(meta["heads"]), dyn, spk).k)
        else:
            raise NIRError(f"node {fn.name!r}: a rate-normalised neuron reads products of spike counts, "
                           f"not {n.kind} {n.name!r}")
    return max(ks)


def lower_rate_neuron(low, fn) -> Process:
    """The rate-normalised IF as a ``neuron`` with ``reset='rate'`` (module doc)."""
    chip = low.chip
    if not chip.product_neurons:
        raise NIRError(f"node {fn.name!r}: the cumulative product's rate-normalised neuron is a programmable "
                       f"neuron model, which {chip.name} does not have; use --chip loihi2 or convert with "
                       "--product per-step")
    src = fn.sources[0]
    if any(low.exp[s] != 0 for s in fn.sources):
        raise NIRError(f"node {fn.name!r}: a rate-normalised neuron reads integer counts (unit 1)")
    real = low._neuron_values(fn)
    s_in = float(np.min(low.scale.get(src, 1.0)))
    if not np.allclose(low.scale.get(src, 1.0), s_in):
        raise NIRError(f"node {fn.name!r}: its input needs one folded scale")
    k, T, limit = _contraction(low, fn), low.T, sat_limit(low.state_bits)
    theta, beta = f64(real["v_threshold"]) / s_in, np.broadcast_to(f64(real["bias"]) / s_in, fn.in_shape)

    def ints(shift: int):
        return (np.round(np.broadcast_to(theta, fn.in_shape) * 2.0 ** shift).astype(np.int64),
                np.round(beta * 2.0 ** shift).astype(np.int64))

    def fits(shift: int, steps: int) -> bool:
        vth, bias = ints(shift)
        return register_bound(steps, float(vth.max()), float(np.abs(bias).max()), k * steps * steps * 2.0 ** shift) \
            <= limit

    top = chip.weight_exp_max + chip.weight_bits - 2   # the largest weight exponent of the bringing synapse
    shift = next((s for s in range(top, -1, -1) if fits(s, T)), None)
    if shift is None:
        vth, bias = ints(0)
        most = max_steps(float(vth.max()), float(np.abs(bias).max()), lambda n: k * n * n, limit)
        raise NIRError(f"node {fn.name!r}: at T = {T} the cumulative product's registers exceed the "
                       f"{low.state_bits}-bit state of {chip.name} (at most T = {most})")
    vth, bias = ints(shift)
    if np.any(vth < 1):
        raise NIRError(f"node {fn.name!r}: its threshold rounds to 0 in the membrane's unit")
    params = {"vth": vth, "bias": bias}
    for key, v in params.items():
        if v.size > 1 and np.all(v == v.flat[0]):
            params[key] = v.reshape(-1)[:1]
    return Process(fn.name, "neuron", list(fn.sources), fn.out_shape, params=params,
                   attrs=NeuronAttrs(du=0, dv=0, state_bits=low.state_bits, decay_bits=low.decay_bits,
                                     reset="rate", in_shift=shift))
