"""The product-neuron construction of a ``prodmm`` (attention on a shipping chip's own primitives).

A product of two dynamic operands (:mod:`hw_sim.products`: ``out[h] = L[h] @ R[h]``, ``r x k``
times ``k x c`` per head) cannot hold its dynamic operand in synaptic memory on a shipping
Loihi: weights are static configuration. Loihi 2's programmable neurons can multiply two
inputs (Lava's ``ProdNeuron``, ``lava/proc/prodneuron``: ``v = (a1 * a2) >> exp``, sent as a
graded spike when ``|v| > vth``), so the chip builds the product from them:

- one product compartment ``P[h, r, k, c]`` per term, ``exp = 0``, ``vth = 0``; port 1 reads
  ``L[h, r, k]`` and port 2 ``R[h, k, c]`` over weight-1 static synapses (the dynamic
  operand's element arrives as a graded spike, the spike operand's as a binary one);
- each ``P`` sends ``a1 * a2`` (when non-zero) over one weight-1 synapse into the reader's
  compartment of ``out[h, r, c]``, whose dendrite sums the ``k`` terms (a value read by
  anything but one neuron is held by a graded integrator ``sum`` the lowering puts there).

**Flat order ``[h, r, k, c]``** (the product's own index order, ``einsum('hrk,hkc->hrkc')``):
the ``k * c`` terms of one output row ``(h, r)`` are consecutive, so a core of ``P`` sends to
the few reader cores holding those rows; an element of ``L`` feeds ``c`` consecutive
compartments (one input axon per core), and an element of ``R`` recurs every ``k * c``
compartments of its head. Every per-core quantity that is a product or sum of a per-``L``
and a per-``R`` quantity is then a difference of prefix sums, computed from per-head
cumulative sums of the operands (:meth:`ProdGeometry.prefix`): no table of ``h*r*k*c``
entries is built for the mapping or for the per-core sums.

**No time multiplexing.** Sub-steps would cut the compartments by the number of sub-steps,
but every other compartment of the model would have to hold its state over them, and
Loihi's CUBA compartments decay every chip step, so they could not do so exactly: one chip
step per product layer, all ``h*r*k*c`` compartments at once (one extra pipeline stage: the
``P`` group is a compartment group of its own, and its reader is one step behind it).

Every form has one binary operand, so a product is never wider than the dynamic operand.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .products import form_dims
from .reach_runs import from_indices, local_index, merged

LOWERINGS = ("operand-memory", "prodneuron", "none")
#: what each lowering is, as reports say it (a hypothetical core is never presented as a shipping chip)
LOWERING_TEXT = {
    "prodneuron": "prodneuron (product compartments, Lava's ProdNeuron: what Loihi 2 has)",
    "operand-memory": "operand-memory (a core holding a dynamic operand: HYPOTHETICAL, no shipping chip has it)",
    "none": "none (the model has no product of two dynamic operands)",
}


def attention_phrase(lowering: str) -> str:
    """The report text of an attention lowering (``LOWERINGS``); an unknown one is shown as it is."""
    return LOWERING_TEXT.get(lowering, str(lowering))


def attention_lowering(chip) -> str:
    """How ``chip`` (a ``Chip`` or its dict) runs a product of two dynamic operands: ``'operand-memory'``
    (``dsmm``: a core holds the operand), ``'prodneuron'`` (``prodmm``) or ``'none'`` (it cannot)."""
    get = chip.get if isinstance(chip, dict) else lambda k, d=False: getattr(chip, k, d)
    if get("dynamic_operand_memory", False):
        return "operand-memory"
    if get("product_neurons", False) and get("graded_spike_bits", 0):
        return "prodneuron"
    return "none"


def attention_of(pg) -> str:
    """The attention lowering a graph holds: ``'prodneuron'``, ``'operand-memory'`` or ``'none'`` (no products)."""
    kinds = {p.kind for p in pg}
    return "prodneuron" if "prodmm" in kinds else "operand-memory" if "dsmm" in kinds else "none"


class ProdGeometry:
    """The ``P`` compartments of one ``prodmm`` ``p`` of graph ``pg``: sizes, index maps, prefix sums."""

    def __init__(self, p, pg):
        y, s = (pg.processes[o] for o in p.operands)
        self.p, self.dims = p, form_dims(p.attrs.form, p.attrs.heads, y.out_shape, s.out_shape)
        self.heads = p.attrs.heads
        (self.r, self.k), (_, self.c) = self.dims.left, self.dims.right
        self.kc = self.k * self.c
        self.size = self.heads * self.r * self.kc
        self.dyn, self.spk = p.operands
        f = self.dims.form
        self.ports = {"left": (f.left, f.transpose_left), "right": (f.right, f.transpose_right)}

    # -- operand views -------------------------------------------------------------------------

    def view(self, side: str, x: torch.Tensor) -> torch.Tensor:
        """Operand values ``x [B, ...]`` of ``side``'s port as ``L [B, h, r, k]`` or ``R [B, h, k, c]``."""
        port, tr = self.ports[side]
        B = x.shape[0]
        if port == "dyn":
            v = x.reshape(B, self.heads, *self.dims.dyn_view)[:, :, self.dims.dyn_rows[0]:self.dims.dyn_rows[1]]
        else:
            v = x.reshape(B, self.heads, *self.dims.spk_view)
        return v.transpose(2, 3) if tr else v

    def source_index(self, side: str, h: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flat index in its operand (``out_shape`` C order) of matrix element ``[h, a, b]`` of ``side``."""
        port, tr = self.ports[side]
        row, col = (b, a) if tr else (a, b)
        if port == "dyn":
            rows, cols = self.dims.dyn_view
            row = row + self.dims.dyn_rows[0]
        else:
            rows, cols = self.dims.spk_view
        return (h * rows + row) * cols + col

    def operand_of(self, side: str) -> str:
        """The operand process name on ``side`` (``'left'`` / ``'right'``)."""
        return self.dyn if self.ports[side][0] == "dyn" else self.spk

    # -- prefix sums over the flat order [h, r, k, c] -----------------------------------------

    def prefix(self, n: torch.Tensor, Lq: torch.Tensor, Rq: torch.Tensor) -> torch.Tensor:
        """``[B, m]``: ``sum over flat P indices < n of Lq[h, i, j] * Rq[h, j, l]`` for boundaries ``n [m]``
        (``Lq [B, h, r, k]``, ``Rq [B, h, k, c]``, float64): the whole rows of ``L`` before ``q = n // c``
        each contribute ``Lq[q] * sum_l Rq[h, j, l]``, row ``q`` its first ``n % c`` columns."""
        B, H = Lq.shape[:2]
        rsum = Rq.sum(3)                                                        # [B, h, k]
        per_q = (Lq * rsum.unsqueeze(2)).reshape(B, -1)                         # [B, h*r*k]
        before = F.pad(torch.cumsum(per_q, 1), (1, 0))                          # [B, h*r*k + 1]
        rpre = F.pad(torch.cumsum(Rq, 3), (1, 0))                               # [B, h, k, c + 1]
        q, l0 = n // self.c, n % self.c
        qc = q.clamp(max=H * self.r * self.k - 1)                               # n = size: q past the end, l0 = 0
        h, j = qc // (self.r * self.k), qc % self.k
        return before[:, q] + Lq.reshape(B, -1)[:, qc] * rpre[:, h, j, l0]

    def per_core(self, Lq: torch.Tensor, Rq: torch.Tensor, chunk: int) -> torch.Tensor:
        """``[B, cores]``: per-core sums of ``Lq[h, i, j] * Rq[h, j, l]`` over consecutive chunks."""
        n = torch.clamp(torch.arange(math.ceil(self.size / chunk) + 1) * chunk, max=self.size)
        cum = self.prefix(n, Lq, Rq)
        return cum[:, 1:] - cum[:, :-1]

    # -- resources -------------------------------------------------------------------------------

    def _per_head(self, s: np.ndarray, e: np.ndarray, count):
        """``sum`` of ``count(a, b)`` over the in-head ranges ``[a, b)`` that ``[s, e)`` cuts from each head."""
        head = self.r * self.kc
        h0, h1 = s // head, (e - 1) // head
        first = np.where(h0 == h1, count(s - h0 * head, e - h0 * head), count(s - h0 * head, np.full_like(s, head)))
        last = np.where(h0 == h1, 0, count(np.zeros_like(e), e - h1 * head))
        return first + last + np.maximum(h1 - h0 - 1, 0) * count(np.zeros(1, np.int64), np.full(1, head, np.int64))

    def _r_axons(self, a, b):
        return np.minimum(b - a, self.kc)   # contiguous in-head indices repeat R's pattern every k*c

    def _r_words(self, spw: int):
        def words(a, b):
            q, rem = np.divmod(b - a, self.kc)    # rem residues feed q + 1 compartments, the others q
            return rem * -(-(q + 1) // spw) + (self.kc - rem) * -(-q // spw)
        return words

    def _l_words(self, s, e, spw: int):
        """Sparse words of the ``L`` axons: an element feeds its ``c`` consecutive compartments' overlap."""
        q0, q1 = s // self.c, (e - 1) // self.c
        first = np.minimum(e, (q0 + 1) * self.c) - s
        last = np.where(q1 > q0, e - q1 * self.c, 0)
        return -(-first // spw) + -(-last // spw) + np.maximum(q1 - q0 - 1, 0) * -(-self.c // spw)

    def core_costs(self, starts: np.ndarray, ends: np.ndarray, chip) -> tuple[np.ndarray, np.ndarray]:
        """Per core (compartments ``[starts, ends)``): synapse words and distinct input axons.

        Axons: the distinct ``L`` elements (``c``-blocks the chunk overlaps) plus the distinct ``R``
        elements (per head, ``min(length, k*c)``). Synapses: two per compartment, sparse (a weight-1
        synapse of one axon into a few compartments; the dense encoding would store a row per axon
        over all the core's compartments), ``ceil(fan / sparse_weights_per_word)`` words per axon.
        """
        spw = chip.sparse_weights_per_word
        axons = ((ends - 1) // self.c - starts // self.c + 1) + self._per_head(starts, ends, self._r_axons)
        words = self._l_words(starts, ends, spw) + self._per_head(starts, ends, self._r_words(spw))
        return words.astype(np.int64), axons.astype(np.int64)

    def operand_elements(self, s: int, e: int) -> list[tuple[str, np.ndarray]]:
        """``(operand, flat source indices)``: the distinct operand elements ``P[s:e]`` read (one axon each),
        each listed once (not sorted)."""
        q = np.arange(s // self.c, (e - 1) // self.c + 1, dtype=np.int64)
        h, i, j = q // (self.r * self.k), (q // self.k) % self.r, q % self.k
        left = self.source_index("left", h, i, j)
        head = self.r * self.kc
        parts = []
        for hh in range(s // head, (e - 1) // head + 1):
            a, b = max(s, hh * head) - hh * head, min(e, (hh + 1) * head) - hh * head
            x = _residues(a, b, self.kc)
            parts.append(self.source_index("right", np.full_like(x, hh), x // self.c, x % self.c))
        return [(self.operand_of("left"), left), (self.operand_of("right"), np.concatenate(parts))]

    def operand_runs(self, chunk: int, cores: int) -> list[tuple[str, np.ndarray, np.ndarray]] | None:
        """:meth:`operand_elements` of every core at once (cores of ``chunk`` terms), as runs: per operand,
        ``(operand, group-local core of each run, runs [n, 2] of flat source indices)``, each core's runs
        sorted, disjoint and not touching (what :func:`hw_sim.reach_runs.from_indices` makes of its
        sorted elements). None when the ``R`` operand is read transposed (its elements are then strided:
        :meth:`operand_elements` core by core)."""
        if self.ports["right"][1]:
            return None
        s = np.arange(cores, dtype=np.int64) * chunk
        e = np.minimum(s + chunk, self.size)
        # L: the rows q = (h, i, j) of [h, r, k] whose c compartments the core's terms overlap (a few each)
        q0, q1 = s // self.c, (e - 1) // self.c
        n = q1 - q0 + 1
        core = np.repeat(np.arange(cores), n)
        q = np.repeat(q0, n) + local_index(n)
        h, i, j = q // (self.r * self.k), (q // self.k) % self.r, q % self.k
        left = _stacked_runs(core, self.source_index("left", h, i, j))
        # R: per head the core's terms touch, the residues mod k*c of its in-head range (at most two
        # ranges); R[h] is read untransposed, so a range of x = j*c + l is a range of its flat index
        head = self.r * self.kc
        h0, h1 = s // head, (e - 1) // head
        nh = h1 - h0 + 1
        core = np.repeat(np.arange(cores), nh)
        hh = np.repeat(h0, nh) + local_index(nh)
        a = np.maximum(s[core], hh * head) - hh * head
        b = np.minimum(e[core], (hh + 1) * head) - hh * head
        first, wrap, second = _residue_ranges(a, b, self.kc)
        base = self.source_index("right", hh, np.zeros_like(hh), np.zeros_like(hh))   # x = 0 of head hh
        first, second = first + base[:, None], second + base[wrap, None]
        # piece p's ranges at 2p (and 2p + 1): each core's in ascending order, as merging wants them
        order = np.argsort(np.concatenate([2 * np.arange(len(hh)), 2 * np.flatnonzero(wrap) + 1]), kind="stable")
        runs = np.concatenate([first, second])[order]
        right = _merged_per_core(np.concatenate([core, core[wrap]])[order], runs)
        return [(self.operand_of("left"), *left), (self.operand_of("right"), *right)]

    def p_cores_of_outputs(self, idx: np.ndarray, chunk: int) -> np.ndarray:
        """Distinct cores (group-local, chunks of ``chunk``) of the ``P`` terms of outputs ``idx`` (flat
        ``[h, r, c]``): a row ``q`` whose every column is read is the contiguous range
        ``[q*k*c, (q+1)*k*c)``; a partly read row's terms are enumerated (``k`` per column)."""
        idx = np.unique(np.asarray(idx, dtype=np.int64))
        q = idx // self.c
        rows, counts = np.unique(q, return_counts=True)
        full = rows[counts == self.c]
        cores = []
        if full.size:   # runs of consecutive full rows are one P range each
            brk = np.nonzero(np.diff(full) != 1)[0]
            lo, hi = full[np.r_[0, brk + 1]], full[np.r_[brk, full.size - 1]]
            cores += [np.arange(a * self.kc // chunk, ((b + 1) * self.kc - 1) // chunk + 1)
                      for a, b in zip(lo, hi, strict=True)]
        part = idx[~np.isin(q, full)]
        if part.size:
            n = (part // self.c * self.kc + part % self.c)[:, None] + np.arange(self.k)[None] * self.c
            cores.append(n.ravel() // chunk)
        return np.unique(np.concatenate(cores)) if cores else np.zeros(0, np.int64)

    def dest_of_terms(self) -> torch.Tensor:
        """Flat output index ``[h, r, c]`` of every term (``[h*r*k*c]``; the per-step hop count uses it)."""
        n = torch.arange(self.size)
        return n // self.kc * self.c + n % self.c


def _residue_ranges(a: np.ndarray, b: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct values of ``x % m`` for ``a <= x < b`` (per element of ``a``, ``b``) as at most two
    ascending ranges (the range wraps at most once): ``(first [n, 2], wrap [n], second [wrap.sum(), 2])``,
    the second range of the pieces in ``wrap`` coming after their first."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    full = b - a >= m
    lo = np.where(full, 0, a % m)
    hi = np.where(full, m, lo + (b - a))
    wrap = hi > m
    first = np.stack([np.where(wrap, 0, lo), np.where(wrap, hi - m, hi)], -1)
    second = np.stack([lo[wrap], np.full(int(wrap.sum()), m)], -1)
    return first, wrap, second


def _residues(a: int, b: int, m: int) -> np.ndarray:
    """The distinct values of ``x % m`` for ``a <= x < b``, ascending (:func:`_residue_ranges` of one range)."""
    first, _, second = _residue_ranges(np.array([a]), np.array([b]), m)
    return np.concatenate([np.arange(s, e, dtype=np.int64) for s, e in np.concatenate([first, second])])


def _stacked_runs(core: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct flat indices ``idx`` read by ``core`` (one each) as each core's runs: ``(core per run,
    runs)``, the cores apart by a gap so no run spans two."""
    span = int(idx.max(initial=0)) + 2
    runs = from_indices(np.sort(core * span + idx))
    c = runs[:, 0] // span
    return c, runs - (c * span)[:, None]


def _merged_per_core(core: np.ndarray, runs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of each core (``core`` ascending, a core's runs ascending and disjoint) merged where they touch:
    ``(core per run, runs)``."""
    span = int(runs[:, 1].max(initial=0)) + 1
    out = merged(runs + (core * span)[:, None])
    c = out[:, 0] // span
    return c, out - (c * span)[:, None]
