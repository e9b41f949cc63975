"""``LIFResetVth``: Lava's ``LIFReset`` with one threshold per neuron (our process of its own for one need), and
``LIFResetCount``: the same with Lava's two 6-bit alignments set to 0, for a neuron reading counts straight.

Lava's LIF holds one ``vth`` for the whole population (``lif/process.py``: "only a single threshold can be set");
a neuron process of ours may hold one per neuron (per attention head, after the lowering folds a per-head scale
into it). This process is ``LIFReset`` with ``vth`` a Var of the population's shape, and its model is Lava's own
bit-accurate ``PyLifResetModelBitAcc`` (its dynamics, reset and ``v > vth << 6`` unchanged) with only that Var's
type changed: no dynamics of ours.

``LIFResetCount``: Lava's bit-accurate LIF shifts its input left by 6 (``act_shift``) and its threshold too
(``vth_shift``, ``lif/models.py``, ``AbstractPyLifModelFixed.__init__``) to MSB-align them with the 24-bit ``u``,
``v``. A neuron of ours reading a count with no synapse between (Spikformer's ``attn_lif`` on ``q k^T v``)
integrates the count itself; scaled by 64, ``v``'s decay (``dv = 2048``: ``(64 v) / 2`` is not ``64 floor(v / 2)``
for odd ``v``) would differ. Its model is ``PyLifResetVthModelBitAcc`` (Lava's dynamics unchanged) with both
shifts 0: ``u += a_in``, spikes on ``v > vth`` (``plan._count_neuron`` gives it our ``vth - 1``). A chip's LIF
has these alignments in silicon (a hypothetical register here, kept to this Lava-only process).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifResetModelBitAcc
from lava.proc.lif.process import LIFReset


class LIFResetVth(LIFReset):
    """``LIFReset`` whose ``vth`` (unsigned 17 bits, compared as ``v > vth << 6``) is given per neuron."""

    def __init__(self, *, shape, vth: np.ndarray, **kwargs):
        super().__init__(shape=shape, vth=0, **kwargs)
        self.vth = Var(shape=tuple(shape), init=np.asarray(vth, np.int32).reshape(shape))


@implements(proc=LIFResetVth, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLifResetVthModelBitAcc(PyLifResetModelBitAcc):
    """Lava's bit-accurate ``LIFReset`` model, ``vth`` an array (``np.left_shift`` and ``>`` act per element)."""

    implements_process = None   # (set by the decorator above: the parent's is LIFReset)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)


class LIFResetCount(LIFResetVth):
    """``LIFResetVth`` run without Lava's 6-bit alignments: ``u += a_in``, spikes on ``v > vth`` (module docstring)."""


@implements(proc=LIFResetCount, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLifResetCountModelBitAcc(PyLifResetVthModelBitAcc):
    """Lava's bit-accurate ``LIFReset`` (per-neuron ``vth``) with ``act_shift = vth_shift = 0``."""

    implements_process = None   # (set by the decorator above)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.act_shift = 0   # the count enters u unscaled (Lava: a_in << 6)
        self.vth_shift = 0   # spikes on v > vth (Lava: v > vth << 6)
