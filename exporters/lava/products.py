"""A ``prodmm`` (a product of a dynamic operand and spikes) as Lava's ``ProdNeuron`` compartments.

Our product (``hw_sim/prodneuron.py``): one compartment ``P[h, r, k, c]`` per term multiplies ``L[h, r, k]`` by
``R[h, k, c]`` (one of them the dynamic operand ``y``, the other binary spikes ``s``) and the reader sums the
``k`` terms of ``out[h, r, c]``. In Lava: ``ProdNeuron(exp=0, vth=0)`` (``v = a_in1 * a_in2``, sent when
non-zero), fed over identity ``Sparse`` synapses (unit positive weights, kept whole by the bit-accurate model)
and summed by one more identity ``Sparse`` synapse per output.

The dynamic operand is a synaptic value: Lava carries ``Y`` with ``y = 64 Y + off`` (``plan.LavaNode``). The
product ``sum_k y s = 64 sum_k Y s + sum_k off s`` splits exactly when ``off`` is a multiple of 64: then
``y s / 64 = (Y + off / 64) s`` and the compartment's port 1 gets ``Y`` plus ``off / 64`` from a constant
host source (``lava.proc.io.source.RingBuffer``), so the summed terms are the product / 64, a synaptic
value with offset 0 that a neuron reads exactly. ``exporters.lava.grid`` rounds a dynamic operand's bias
to a multiple of 64 (``SEMANTICS.md``); any other offset is refused. A dynamic operand of spikes or of a count
(Spikformer's ``q k^T`` and ``(q k^T) v``) is our integer itself: the summed terms are the product, a count.
"""

from __future__ import annotations

import numpy as np

from hw_sim.prodneuron import ProdGeometry

ALIGN = 64   # Lava's LIF takes a_in << 6 (lif/models.py, act_shift): a neuron's input comes in steps of 64


def plan_prodmm(p, pg, dyn, spk, delayed, refuse):
    """The ``prodmm`` node's params: per compartment, the Lava flat index of its dynamic and spike operand
    elements (``dyn_idx``, ``spk_idx``), the constant ``dyn_bias`` its port 1 adds (``off / 64``) and its output's
    Lava flat index (``dest``); ``dyn``, ``spk``: the operands' nodes, ``delayed(node, depth)``: a node brought
    to ``depth``; returns ``(inputs, delay, params)``."""
    from .plan import lava_order

    if dyn.host:
        refuse(p, "a product whose dynamic operand holds a value the host computes per image (not built yet)")
    if dyn.synaptic and dyn.offset.any() and (dyn.offset % ALIGN).any():
        refuse(p, "its dynamic operand's bias is not a multiple of 64 (the product of the bias and the spikes "
                  "would not reach Lava's neuron exactly); export it with 'sresformer export SRC --target lava'")
    g = ProdGeometry(p, pg)
    n = np.arange(g.size, dtype=np.int64)
    h, i, j, col = n // (g.r * g.kc), (n // g.kc) % g.r, (n // g.c) % g.k, n % g.c
    side = {"left": (h, i, j), "right": (h, j, col)}
    dyn_side = "left" if g.dims.form.left == "dyn" else "right"
    spk_side = "right" if dyn_side == "left" else "left"
    ours_dyn = g.source_index(dyn_side, *side[dyn_side])
    ours_spk = g.source_index(spk_side, *side[spk_side])
    out_order = lava_order(p.out_shape)
    depth = max(dyn.delay, spk.delay)
    dyn, spk = delayed(dyn, depth), delayed(spk, depth)
    # a dynamic operand of spikes or counts is our integer itself (no offset): the summed terms are the count
    dyn_bias = dyn.offset[ours_dyn] // ALIGN if dyn.synaptic else np.zeros(g.size, np.int64)
    params = {"size": g.size, "dyn_idx": np.argsort(dyn.order)[ours_dyn], "spk_idx": np.argsort(spk.order)[ours_spk],
              "dyn_bias": dyn_bias, "dest": np.argsort(out_order)[n // g.kc * g.c + col], "spk_graded": spk.synaptic}
    # port synapses add one step, the summing synapse one more
    return [dyn.name, spk.name], depth + 2, params


def _identity(rows: np.ndarray, cols: np.ndarray, shape):
    """A CSR matrix of ``shape`` with unit weights at ``(rows[i], cols[i])``."""
    import scipy.sparse as sp

    return sp.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=shape)


def make_prodmm(n, dyn_port, spk_port, procs: dict):
    """Instantiate the ``prodmm`` node ``n`` reading ``dyn_port`` and ``spk_port``; its out port (Lava layout)."""
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.prodneuron.process import ProdNeuron
    from lava.proc.sparse.process import Sparse

    p, size = n.params, n.params["size"]
    n_dyn, n_spk, n_out = int(np.prod(dyn_port.shape)), int(np.prod(spk_port.shape)), int(np.prod(n.shape))
    prod = ProdNeuron(shape=(size,), vth=0, exp=0)   # v = a_in1 * a_in2, sent when v != 0
    rows = np.arange(size)
    a1 = Sparse(weights=_identity(rows, p["dyn_idx"], (size, n_dyn)), num_message_bits=24, name=f"{n.name}.a1")
    a2 = Sparse(weights=_identity(rows, p["spk_idx"], (size, n_spk)), num_message_bits=24 if p["spk_graded"] else 0,
                name=f"{n.name}.a2")
    dyn_port.reshape((n_dyn,)).connect(a1.s_in)
    spk_port.reshape((n_spk,)).connect(a2.s_in)
    a1.a_out.connect(prod.a_in1)
    a2.a_out.connect(prod.a_in2)
    if p["dyn_bias"].any():   # the operand's offset / 64, every step (a constant host source)
        bias = Source(data=p["dyn_bias"].astype(np.int32).reshape(size, 1))
        bias.s_out.connect(prod.a_in1)
        procs[f"{n.name}.bias"] = bias
    summed = Sparse(weights=_identity(p["dest"], rows, (n_out, size)), num_message_bits=24, name=f"{n.name}.sum")
    prod.s_out.connect(summed.s_in)
    procs.update({f"{n.name}.a1": a1, f"{n.name}.a2": a2, n.name: prod, f"{n.name}.sum": summed})
    return summed.a_out.reshape(n.shape)
