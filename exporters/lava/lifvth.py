"""``LIFResetVth``: Lava's ``LIFReset`` with one threshold per neuron (our process of its own for one need).

Lava's LIF holds one ``vth`` for the whole population (``lif/process.py``: "only a single threshold can be set");
a neuron process of ours may hold one per neuron (per attention head, after the lowering folds a per-head scale
into it). This process is ``LIFReset`` with ``vth`` a Var of the population's shape, and its model is Lava's own
bit-accurate ``PyLifResetModelBitAcc`` (its dynamics, reset and ``v > vth << 6`` unchanged) with only that Var's
type changed: no dynamics of ours.
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
