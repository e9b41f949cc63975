"""The chip's products of two dynamic operands, as data: one entry per form.

A form names the two operand ports of a ``dsmm`` process (``'dyn'``: the dynamic operand,
``'spk'``: the binary spikes that gate it) and whether each is transposed in the per-head
product ``out[h] = L[h] @ R[h]``; each operand is viewed per head as
``[heads, C / heads, prod(rest)]`` (FORMAT.md, "dual-spike matmul").
"""

from __future__ import annotations

#: Spikformer SSA products (Zhou et al., ICLR 2023, eq. 6):
#: ``form -> (left, transpose_left, right, transpose_right)`` with the operands ``'dyn'`` (metadata ``dynamic``) and ``'spk'`` (``spikes``, binary); per head
#: ``out[h] = L[h] @ R[h]``, each operand viewed ``[heads, C/heads, prod(rest)]`` (FORMAT.md).
SSA_FORMS = {"kT@v": ("dyn", False, "spk", True),    # K V^T: conv layout's K^T V, [d, d] per head
             "q@kv": ("dyn", True, "spk", False),    # KV^T Q: conv layout's Q (K^T V), transposed
             "q@kT": ("dyn", True, "spk", False),    # Q^T K: token layout's Q K^T, [N, N] per head
             "qk@v": ("spk", False, "dyn", True)}    # V QK^T: token layout's (Q K^T) V, transposed
DSSA_FORMS = ("y1T@s", "y2@a")  # SpikingResformer DSSA eq. (9): A = y1^T @ S ; eq. (10): O = y2 @ A
FORMS = DSSA_FORMS + tuple(SSA_FORMS)
