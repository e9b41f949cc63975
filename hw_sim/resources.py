"""What one core of a compartment group costs: memory words, input axons, synapses, by encoding.

The chip's one per-core memory (``Chip.memory_words``) holds, per core:

- neuron state: ``cuba_state_words`` per compartment (every compartment group is a CUBA
  compartment on the chip: neurons, and graded integrators with unit decays);
- synapses, in the cheapest encoding the chip has for each synapse:
  *convolutional* (weights shared by every position: per input channel of the groups the
  core's output channels belong to, per tap, ``ceil(n * b / conv_word_bits) +
  conv_header_words`` words for the core's ``n`` output channels of that group at the
  layer's own weight width ``b``); *dense* (``ceil(n / dense_weights_per_word)`` words per
  input axon for the core's ``n`` outputs); *sparse* (``ceil(k / sparse_weights_per_word)``
  words per input axon with ``k`` non-zero weights into the core);
- dynamic operands of dual-spike matmuls: the entries the core's outputs read, ``state_bits``
  each;
- input axons: ``axon_in_words`` per distinct input axon;
- a ``prodmm``'s product compartments (:mod:`hw_sim.prodneuron`): a group of their own,
  ``heads*r*k*c`` compartments of ``cuba_state_words`` each (Lava's ProdNeuron holds ``v``,
  ``vth``, ``exp``), two weight-1 sparse synapses each, an axon per distinct operand element
  read; the reader of its value holds ``k`` axons and ``k`` synapses per compartment (one from
  each term of its output), all counted in closed form, no per-term table.

Input axons: one per distinct source element with a stored synapse into the core (sparse
and element-for-element connections: counted from the weights, borders included); every
core of a dense layer receives every input the layer reads (Intel's table);
a convolutional synapse receives through one axon per column phase of its stride
(``stride_x``) per input group (fit to Intel's table: 2, 2, 2, 1, 1 axons in for PilotNet's
x-strides 2, 2, 2, 1, 1); a dynamic operand entry, and each spike a dual-spike matmul's
outputs on the core are gated by, arrives on an axon of its own; an
element-wise synapse (one weight per channel) reading a host process, and a host value read
element for element, are applied by the host when it injects the value (lava-dl netx's
input layer; Intel's table: 1 axon in, 0 synapses): 1 axon, no synapse memory.

Cores hold consecutive compartments (flat ``C, H, W`` order, as everywhere in ``hw_sim``);
the numbers here are per core for a cut of a group into chunks of ``chunk`` compartments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .chips import Chip
from .op_kernels import ConvOps
from .processes import Process, ProcessGraph
from .prodneuron import ProdGeometry
from .products import form_dims
from .reach import back


def stored_weight_bits(w: np.ndarray, widest: int) -> int:
    """Signed bits a layer's weights are stored at: after the common power of two is moved to
    the exponent, the width of the largest magnitude plus the sign (as lava-dl netx's
    ``optimize_weight_bits`` sets each layer's ``num_weight_bits``), at most ``widest``."""
    nz = np.abs(np.asarray(w, dtype=np.int64)[np.asarray(w) != 0])
    if nz.size == 0:
        return 1
    common = int(np.bitwise_or.reduce(nz))
    shift = (common & -common).bit_length() - 1   # trailing zeros common to every weight
    return min(widest, int(nz.max() >> shift).bit_length() + 1)


def bounds(size: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last flat index of every core's chunk."""
    starts = np.arange(math.ceil(size / chunk), dtype=np.int64) * chunk
    return starts, np.minimum(starts + chunk, size)


def block_sum(per_elem: np.ndarray, chunk: int) -> np.ndarray:
    """Sums of ``per_elem`` (per compartment) over every core's chunk."""
    starts, _ = bounds(len(per_elem), chunk)
    return np.add.reduceat(per_elem, starts) if len(per_elem) else np.zeros(0)


@dataclass
class CoreCosts:
    """Per core of a group cut into chunks (arrays over the group's cores)."""

    neurons: np.ndarray
    synapse_words: np.ndarray
    operand_words: np.ndarray
    axons_in: np.ndarray
    synapses: np.ndarray          # stored (input, output) synapse pairs: ops when every input fires

    def words(self, chip: Chip) -> np.ndarray:
        """Memory words every core uses (neuron state + synapses + operands + input axons)."""
        return (self.neurons * chip.cuba_state_words + self.synapse_words + self.operand_words
                + self.axons_in * chip.axon_in_words)


class GroupCost:
    """The cost model of one compartment group, set up once and evaluated for any chunk size."""

    def __init__(self, pg: ProcessGraph, members: list[str], size: int, chip: Chip, host: set[str]):
        self.pg, self.chip, self.size, self.host = pg, chip, size, host
        self.members = set(members)
        self.terms = []      # (kind, process, source) per external input of a member
        self.prod = None     # the product compartments of a prodmm group (hw_sim/prodneuron.py)
        for m in members:
            p = pg.processes[m]
            if p.kind == "dsmm":
                self.terms.append(("operand", p, None))
                continue
            if p.kind == "prodmm":
                self.prod = ProdGeometry(p, pg)
                self.terms.append(("prodneuron", p, None))
                continue
            for s in p.sources:
                if self.real_source(s) not in self.members:   # a pass-through of a member is internal
                    self.terms.append((self._kind(p, s), p, s))
        self._pairs = None

    def _kind(self, p: Process, src: str) -> str:
        from_host = self.real_source(src) in self.host
        if self.pg.processes[self.real_source(src)].kind == "prodmm":
            return "products"
        if p.kind == "synapse":
            if p.attrs.op == "dense":
                return "dense"
            if self._elementwise(p) and from_host:
                return "host"
            return "conv" if self.chip.conv_word_bits else "conv-sparse"
        if p.kind in ("sumpool", "maxpool"):
            return "pool"
        # an element-for-element input: a value the host computes is injected by the host
        return "host" if from_host else "identity"

    @staticmethod
    def _elementwise(p: Process) -> bool:
        """One weight per channel: a 1x1 depthwise convolution."""
        w = np.asarray(p.params["weight"])
        return w.ndim == 4 and w.shape[1:] == (1, 1, 1) and p.attrs.groups == w.shape[0]

    def real_source(self, name: str) -> str:
        """The process whose values arrive: through flattens and pass-through sums."""
        while True:
            p = self.pg.processes[name]
            if p.kind in ("flatten", "gate") or (p.kind == "sum" and p.attrs.alias):
                name = p.sources[0]
            else:
                return name

    # -- per-core numbers ------------------------------------------------------------------------

    def costs(self, chunk: int) -> CoreCosts:
        """Every core's neurons, synapse words, operand words, input axons and stored synapses."""
        starts, ends = bounds(self.size, chunk)
        zero = np.zeros(len(starts), dtype=np.int64)
        words, axons = zero.copy(), zero.copy()
        operand = zero.copy()
        for kind, p, src in self.terms:
            w, a = self.COSTS[kind](self, p, src, starts, ends, chunk)
            if kind == "operand":
                operand += w
            else:
                words += w
            axons += a
        # a prodmm group stores two synapses per compartment (no per-compartment table of its terms)
        stored = 2 * (ends - starts) if self.prod is not None else block_sum(self.pairs(), chunk).astype(np.int64)
        return CoreCosts(ends - starts, words, operand, axons, stored)

    def encodings(self, chunk: int) -> dict[str, np.ndarray]:
        """Per synaptic process of the group (static synapses and pool windows), the encoding its synapses
        take on each core: ``"conv"``, ``"dense"`` or ``"sparse"`` (the one :meth:`costs` charges)."""
        starts, ends = bounds(self.size, chunk)
        out = {}
        for kind, p, _src in self.terms:
            if kind in ("conv", "pool"):
                enc = np.full(len(starts), "conv" if self.chip.conv_word_bits else "sparse")
            elif kind in ("conv-sparse", "identity"):
                enc = np.full(len(starts), "sparse")
            elif kind == "dense":
                enc = np.where(self._dense_words(p, starts, ends)[0], "dense", "sparse")
            else:   # host-applied, operands, product compartments: no static encoding
                continue
            out[p.name] = enc
        return out

    def pairs(self) -> np.ndarray:
        """Stored synapses per compartment (non-zero weights whose input lies inside the map)."""
        if self._pairs is None:
            out = np.zeros(self.size, dtype=np.int64)
            for kind, p, src in self.terms:
                if kind == "host":
                    continue   # the host applies it as it injects the value: no op on the chip
                if kind in ("conv", "conv-sparse"):
                    out += _conv_taps_in_map(p, self.pg)
                elif kind == "dense":
                    out += (np.asarray(p.params["weight"]) != 0).sum(1)
                elif kind == "pool":
                    out += _pool_taps_in_map(p, self.pg)
                elif kind == "identity":
                    out += 1
                elif kind == "products":   # one synapse from each of the output's k product compartments
                    out += ProdGeometry(self.pg.processes[self.real_source(src)], self.pg).k
                else:   # a dual-spike matmul: one accumulation per operand entry of its sum
                    out += _dims(p, self.pg).k
            self._pairs = out
        return self._pairs

    def _host(self, p, src, starts, ends, chunk):
        return np.zeros_like(starts), np.ones_like(starts)

    def _identity(self, p, src, starts, ends, chunk):
        n = ends - starts   # one synapse (one word) and one axon per compartment
        return n, n

    def _channels(self, starts, ends, plane):
        return starts // plane, (ends - 1) // plane

    def _conv(self, p, src, starts, ends, chunk):
        """Convolutional encoding: the kernel rows of the groups the core's channels belong to."""
        w = np.asarray(p.params["weight"])
        cout, cin_g, kh, kw = w.shape
        cout_g = cout // p.attrs.groups
        b = stored_weight_bits(w, self.chip.weight_bits)
        c0, c1 = self._channels(starts, ends, int(np.prod(p.out_shape[1:])))
        g0, g1 = c0 // cout_g, c1 // cout_g
        row = lambda n: -(-n * b // self.chip.conv_word_bits) + self.chip.conv_header_words  # noqa: E731
        first = np.where(g0 == g1, c1 - c0 + 1, (g0 + 1) * cout_g - c0)
        last = np.where(g0 == g1, 0, c1 - g1 * cout_g + 1)
        middle = np.maximum(g1 - g0 - 1, 0)
        per_tap = row(first) + np.where(last > 0, row(last), 0) + middle * row(cout_g)
        phases = p.attrs.stride[1]
        return cin_g * kh * kw * per_tap, phases * (g1 - g0 + 1)

    def _conv_sparse(self, p, src, starts, ends, chunk):
        """No convolutional encoding: every stored synapse sparse, every input element an axon."""
        taps = block_sum(_conv_taps_in_map(p, self.pg), chunk)
        axons = np.array([_conv_inputs_read(p, self.pg, a, e) for a, e in zip(starts, ends, strict=True)],
                         dtype=np.int64)
        return -(-taps // self.chip.sparse_weights_per_word), axons

    def _pool(self, p, src, starts, ends, chunk):
        """A window sum: a depthwise kernel of ones (1 bit), convolutional where the chip has it."""
        kh, kw = p.attrs.kernel
        c0, c1 = self._channels(starts, ends, int(np.prod(p.out_shape[1:])))
        if not self.chip.conv_word_bits:
            taps = block_sum(_pool_taps_in_map(p, self.pg), chunk)
            return -(-taps // self.chip.sparse_weights_per_word), taps
        chans = c1 - c0 + 1
        row = -(-1 // self.chip.conv_word_bits) + self.chip.conv_header_words
        return chans * kh * kw * row, p.attrs.stride[1] * chans

    def _dense(self, p, src, starts, ends, chunk):
        """Dense or sparse encoding, whichever takes fewer words, per core; axons from the weights."""
        _, words, axons = self._dense_words(p, starts, ends)
        return words, axons

    def _dense_words(self, p, starts, ends):
        """Per core: whether the dense encoding is the cheaper, the words of the cheaper, the input axons."""
        nz = np.asarray(p.params["weight"]) != 0
        per = np.add.reduceat(nz.astype(np.int64), starts, axis=0)     # [cores, inputs]: non-zeros into the core
        # every core of a dense layer receives every input the layer reads (Intel's table: AxonIn =
        # 2560 on each core of 2560->100, though a core's 9 neurons leave 158 inputs unread)
        axons = np.full(len(starts), int(nz.any(0).sum()), dtype=np.int64)
        dense = axons * -(-(ends - starts) // self.chip.dense_weights_per_word)
        sparse = (-(-per // self.chip.sparse_weights_per_word)).sum(1)
        return dense <= sparse, np.minimum(dense, sparse), axons

    def _operand(self, p, src, starts, ends, chunk):
        """A dual-spike matmul ``out[r, c] = sum_k L[r, k] R[k, c]``: a core reads the rows ``L[r, :]``
        of its output rows and the columns ``R[:, c]`` of its output columns (per head). The dynamic
        side is held at ``state_bits`` an entry, each entry written through an axon of its own; each
        spike of the other side arrives on an axon."""
        entries, spikes = self._operand_entries(p, starts, ends)
        return -(-entries * self.chip.state_bits // self.chip.word_bits), entries + spikes

    def operand_entries(self, chunk: int) -> dict[str, np.ndarray]:
        """Dynamic-operand entries every core holds, per dsmm member (``[cores]``): what each step rewrites."""
        starts, ends = bounds(self.size, chunk)
        return {p.name: self._operand_entries(p, starts, ends)[0] for kind, p, _ in self.terms if kind == "operand"}

    def _operand_entries(self, p, starts, ends):
        """(dynamic-operand entries, spike axons) of a dsmm per core."""
        dims = _dims(p, self.pg)
        rows_per_head, cols = dims.out
        rows = ((ends - 1) // cols - starts // cols + 1) * dims.k
        head = rows_per_head * cols
        h0, h1 = starts // head, (ends - 1) // head
        first = np.where(h0 == h1, ends - starts, (h0 + 1) * head - starts)
        last = np.where(h0 == h1, 0, ends - h1 * head)
        columns = (np.minimum(first, cols) + np.minimum(last, cols) + np.maximum(h1 - h0 - 1, 0) * cols) * dims.k
        return (rows, columns) if dims.form.spk_side == "right" else (columns, rows)

    def _prodneuron(self, p, src, starts, ends, chunk):
        """A prodmm's product compartments: their two weight-1 synapses and distinct operand axons."""
        return self.prod.core_costs(starts, ends, self.chip)

    def _products(self, p, src, starts, ends, chunk):
        """A reader of a prodmm: per compartment ``k`` input axons (one per product compartment of its
        output), each with one weight-1 synapse (sparse: ``ceil(1 / sparse_weights_per_word)`` word)."""
        k = ProdGeometry(self.pg.processes[self.real_source(src)], self.pg).k
        n = (ends - starts) * k
        return n * -(-1 // self.chip.sparse_weights_per_word), n

    #: connection kind -> its per-core (words, axons)
    COSTS = {"host": _host, "identity": _identity, "conv": _conv, "conv-sparse": _conv_sparse, "pool": _pool,
             "dense": _dense, "operand": _operand, "prodneuron": _prodneuron, "products": _products}

    # -- the chunk a core holds ------------------------------------------------------------------

    def fits(self, chunk: int) -> bool:
        """Every core's memory, input axons and compartments within the chip's limits."""
        if chunk > self.chip.neurons_per_core:
            return False
        c = self.costs(chunk)
        return bool((c.words(self.chip) <= self.chip.memory_words).all() and (c.axons_in <= self.chip.max_fan_in).all())

    def _slab_state_fits(self, n: int) -> bool:
        return n <= self.chip.neurons_per_core and n * self.chip.cuba_state_words <= self.chip.memory_words

    def largest_chunk(self, shape) -> int:
        """The largest chunk every core of which fits (0: not even one compartment does).

        A map ``C x H x W`` is cut the way Intel's compiler cuts a conv layer: into slabs of
        all channels, full height and a power-of-two number of columns (PilotNet's table:
        16, 4, 4, 8, 8, 16 columns), so a chunk is ``C * H * 2**j`` compartments; a map whose
        single column does not fit a core, and a vector, is cut into any chunk size.
        """
        top = min(self.chip.neurons_per_core, self.size)
        if len(shape) == 3 and shape[2] > 1:
            col = int(shape[0] * shape[1])
            cols, best = 1, 0
            # a slab is sized for its power-of-two width even where the map is narrower (Intel's
            # table: PilotNet's last conv, 20 columns, in 2 slabs of 16, not in one of 20)
            while self._slab_state_fits(col * cols) and self.fits(min(col * cols, self.size)):
                best = min(col * cols, self.size)
                if best == self.size:
                    break
                cols *= 2
            if best:
                return best
            top = min(top, col)
        lo, hi = 1, top
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self.fits(mid) else (lo, mid - 1)
        # a chunk of 1 is tried only when every larger one failed: one core per compartment of a
        # big group (a prodmm's tens of millions) is costly to evaluate, and fitting is monotone
        return lo if lo > 1 or self.fits(1) else 0


def _conv_taps_in_map(p: Process, pg: ProcessGraph) -> np.ndarray:
    """Per conv output: its non-zero weights whose input position lies inside the (unpadded) map,
    i.e. the conv's synaptic ops when every input element is non-zero."""
    ones = torch.ones(1, *_chw(pg.processes[p.sources[0]].out_shape))
    return ConvOps(p)(ones).flatten().round().numpy().astype(np.int64)


def _pool_taps_in_map(p: Process, pg: ProcessGraph) -> np.ndarray:
    """Per pool output: window positions inside the map."""
    ones = torch.ones(1, *_chw(pg.processes[p.sources[0]].out_shape), dtype=torch.float64)
    return F.avg_pool2d(ones, tuple(p.attrs.kernel), tuple(p.attrs.stride), tuple(p.attrs.padding),
                        divisor_override=1).flatten().round().numpy().astype(np.int64)


def _conv_inputs_read(p: Process, pg: ProcessGraph, a: int, e: int) -> int:
    """Distinct input elements with a stored synapse into outputs ``a..e-1`` (flat)."""
    m = torch.zeros(int(np.prod(p.out_shape)))
    m[a:e] = 1
    return int((back(p, pg, m)[0][1] > 0.5).sum())


def _dims(p: Process, pg: ProcessGraph):
    y, s = (pg.processes[o] for o in p.operands)
    return form_dims(p.attrs.form, p.attrs.heads, y.out_shape, s.out_shape)


def _chw(shape) -> tuple[int, int, int]:
    return tuple(int(s) for s in shape) if len(shape) == 3 else (int(np.prod(shape)), 1, 1)
