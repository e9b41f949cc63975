"""The chip's products of two dynamic operands (``dsmm`` processes), as data: one entry per form.

A ``dsmm`` process reads two operand ports: ``'dyn'`` (the dynamic operand, NIR metadata
``dynamic``) and ``'spk'`` (binary spikes that gate it, ``spikes``). Every form computes,
per head ``h``, ``out[h] = L[h] @ R[h]`` where each operand of per-sample shape
``[C, ...]`` is viewed per head as ``[C / heads, prod(rest)]``; the dynamic operand's view
may be cut into two halves of rows of which the form uses one (DSSA's ``y = [y1; y2]``),
and either side may be transposed. The output ``[heads * rows(L), cols(R)]`` is reshaped
to the process's ``out_shape``.

The product is a gated accumulation: every spike of ``spk`` adds one row (spikes on the
left) or one column (spikes on the right) of the dynamic side to the output, so a spike
costs ``ac_per_spike`` accumulates: the free length of the dynamic side (an AND of two
binary operands would cost only the coincident pairs; we count the stored-operand reads).

Every implementation (fake-quant model, executor, counters, bounds, mapping, the NIR
reader) reads :data:`PRODUCT_FORMS` and :func:`form_dims`; no code names a form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ProductForm:
    """One product form: ``out[h] = L[h] @ R[h]`` with ``L``, ``R`` views of the operand ports.

    ``left`` / ``right``: the port (``'dyn'`` or ``'spk'``) on that side; ``transpose_*``:
    whether the per-head view is transposed there; ``dyn_half``: ``None`` when the dynamic
    operand's whole per-head view is used, ``0`` / ``1`` for its first / second half of rows.
    ``out_maps``: the output's trailing shape: ``'spk'`` the spike operand's maps ``[H, W]``,
    ``'cols'`` ``[cols(R), 1]``. ``family``: the model family (``'DSSA'``, ``'SSA'``);
    ``equation``: the form in the paper's notation (written into NIR metadata).
    """

    name: str
    left: str
    transpose_left: bool
    right: str
    transpose_right: bool
    dyn_half: int | None
    out_maps: str
    family: str
    equation: str
    source: str

    @property
    def spk_side(self) -> str:
        """``'left'`` or ``'right'``: where the spike operand sits in ``L @ R``."""
        return "left" if self.left == "spk" else "right"

    @property
    def spk_transposed(self) -> bool:
        """Whether the spike operand's per-head view is transposed in the product."""
        return self.transpose_left if self.left == "spk" else self.transpose_right

    @property
    def dyn_transposed(self) -> bool:
        """Whether the dynamic operand's per-head view is transposed in the product."""
        return self.transpose_left if self.left == "dyn" else self.transpose_right


_DSSA = "SpikingResformer DSSA (Shi et al., CVPR 2024)"
_SSA = "Spikformer SSA (Zhou et al., ICLR 2023, eq. 6)"
_MST = ("cumulative product of spike counts, dP_t = s^a_t (C^b_t)^T + C^a_{t-1} (s^b_t)^T "
        "(sresformer.qcfs.cumulative_increment) of the converted MST (Wang et al., ICCV 2023)")

#: Every product form the chip runs, by the name NIR files and artifacts store.
PRODUCT_FORMS: dict[str, ProductForm] = {f.name: f for f in (
    ProductForm("y1T@s", "dyn", True, "spk", False, 0, "spk", "DSSA",
                "out[h] = y[h, :d]^T @ S[h]  (y: [heads, 2d, N], S: [heads, d, H*W]) -> [heads*N, H, W]",
                f"{_DSSA}, eq. (9): A = y1^T S"),
    ProductForm("y2@a", "dyn", False, "spk", False, 1, "spk", "DSSA",
                "out[h] = y[h, d:] @ A[h]  (y: [heads, 2d, N], A: [heads, N, H*W]) -> [heads*d, H, W]",
                f"{_DSSA}, eq. (10): O = y2 A"),
    # conv layout's K^T V: K V^T, [d, d] per head
    ProductForm("kT@v", "dyn", False, "spk", True, None, "cols", "SSA",
                "out[h] = K[h] @ V[h]^T  (K, V: [heads, d, N]) -> [heads*d, d, 1]", _SSA),
    # conv layout's Q (K^T V), transposed
    ProductForm("q@kv", "dyn", True, "spk", False, None, "spk", "SSA",
                "out[h] = KV[h]^T @ Q[h]  (KV: [heads, d, d], Q: [heads, d, N]) -> [heads*d, H, W]", _SSA),
    # token layout's Q K^T: [N, N] per head
    ProductForm("q@kT", "dyn", True, "spk", False, None, "spk", "SSA",
                "out[h] = Q[h]^T @ K[h]  (Q, K: [heads, d, N]) -> [heads*N, H, W]", _SSA),
    # token layout's (Q K^T) V, transposed
    ProductForm("qk@v", "spk", False, "dyn", True, None, "spk", "SSA",
                "out[h] = V[h] @ QK[h]^T  (QK: [heads, N, N], V: [heads, d, N]) -> [heads*d, H, W]", _SSA),
    # the cumulative product's other two terms (q@kT and qk@v serve for C^q_{t-1} s^k_t and s^v_t C^A_{t-1}):
    # spikes against counts on the other side (hw_sim/ratenorm.py)
    ProductForm("sq@ckT", "spk", True, "dyn", False, None, "spk", "MST",
                "out[h] = Sq[h]^T @ Ck[h]  (Sq, Ck: [heads, d, N]) -> [heads*N, H, W]", _MST),
    ProductForm("sa@cv", "dyn", False, "spk", True, None, "spk", "MST",
                "out[h] = Cv[h] @ SA[h]^T  (SA: [heads, N, N], Cv: [heads, d, N]) -> [heads*d, H, W]", _MST),
)}
FORMS = tuple(PRODUCT_FORMS)


@dataclass(frozen=True)
class FormDims:
    """Per-head matrix shapes of one product: ``left``, ``right`` (after transposes), ``out``,
    the contraction length ``k`` and the dynamic operand's per-head view ``dyn_rows`` x ``dyn_cols``
    (its whole view, both halves when the form uses one) and the rows it uses ``dyn_row0:dyn_row1``."""

    form: ProductForm
    heads: int
    left: tuple[int, int]
    right: tuple[int, int]
    dyn_view: tuple[int, int]
    dyn_rows: tuple[int, int]
    spk_view: tuple[int, int]

    @property
    def out(self) -> tuple[int, int]:
        """Per-head output ``[rows(L), cols(R)]``."""
        return self.left[0], self.right[1]

    @property
    def k(self) -> int:
        """Contraction length: how many products one output sums."""
        return self.left[1]

    @property
    def ac_per_spike(self) -> int:
        """Accumulates one spike of ``spk`` costs: the length of the dynamic row / column it adds."""
        return self.right[1] if self.form.spk_side == "left" else self.left[0]


def head_view(shape, heads: int) -> tuple[int, int]:
    """``(rows, cols)`` of one head of an operand of per-sample ``shape``: ``[C/heads, prod(rest)]``."""
    if shape[0] % heads:
        raise ValueError(f"an operand of {shape[0]} channels does not split into {heads} heads")
    return shape[0] // heads, math.prod(shape[1:])


def form_dims(form: str, heads: int, dyn_shape, spk_shape) -> FormDims:
    """The per-head shapes of product ``form`` with ``heads`` heads on operands of these per-sample shapes.

    ``ValueError`` when the operands do not split into heads (and halves) or do not multiply.
    """
    f = PRODUCT_FORMS[form]
    dyn = head_view(dyn_shape, heads)
    rows = (0, dyn[0])
    if f.dyn_half is not None:
        if dyn[0] % 2:
            raise ValueError(f"dsmm {form}: a dynamic operand of {dyn_shape[0]} channels does not split into "
                             f"{heads} heads x 2 halves")
        half = dyn[0] // 2
        rows = (f.dyn_half * half, (f.dyn_half + 1) * half)
    used = {"dyn": (rows[1] - rows[0], dyn[1]), "spk": head_view(spk_shape, heads)}
    left = used[f.left][::-1] if f.transpose_left else used[f.left]
    right = used[f.right][::-1] if f.transpose_right else used[f.right]
    if left[1] != right[0]:
        raise ValueError(f"dsmm {form}: per-head operands {left} and {right} do not multiply")
    return FormDims(f, heads, left, right, dyn, rows, used["spk"])
