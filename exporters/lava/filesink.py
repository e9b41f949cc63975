"""``FileSink``: Lava's ``io.sink.RingBuffer`` that hands its recording to the host as one ``.npy`` file.

Lava's recording is right (``PyReceiveModelFixed`` stores each step's ``a_in``), but reading it back is not
usable at our sizes: ``data.get()`` sends a Var one element per message (lava-nc 0.10,
``magma/core/model/py/model.py``, ``_get_var``: "FIXME: send a whole vector"), 80 of the 100 s of a PilotNet
run for ~1.1 M recorded integers. This process is that ``RingBuffer`` and its model is Lava's own
``PyReceiveModelFixed``, unchanged; only at its buffer's last step it also saves the buffer to
``proc_params['path']`` (``np.save``, a temp name then ``os.replace``: never a half-written file). No
dynamics of ours: it records what Lava's ring buffer records.
"""

from __future__ import annotations

import os

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.io.sink import PyReceiveModelFixed, RingBuffer


class FileSink(RingBuffer):
    """Lava's sink ``RingBuffer`` (``shape``, ``buffer`` steps) whose data also lands in ``path`` (``.npy``,
    ``[*shape, buffer]``, int32) when its last step has run."""

    def __init__(self, *, shape, buffer: int, path: str):
        super().__init__(shape=tuple(shape), buffer=int(buffer))
        self.proc_params["path"] = os.fspath(path)


@implements(proc=FileSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFileSinkModelFixed(PyReceiveModelFixed):
    """Lava's fixed-point ring-buffer model; the full buffer saved once, at step ``buffer``."""

    implements_process = None   # (set by the decorator above: the parent's is RingBuffer)

    def run_spk(self) -> None:
        super().run_spk()
        if self.time_step == self.data.shape[-1]:
            path = self.proc_params["path"]
            tmp = f"{path}.part.npy"   # np.save keeps a name that ends in .npy
            np.save(tmp, self.data)
            os.replace(tmp, path)


def read_sink(path: str) -> np.ndarray:
    """The recording a :class:`FileSink` saved: ``[*shape, steps]`` integers."""
    return np.load(path)
