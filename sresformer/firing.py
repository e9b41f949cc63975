"""Firing rates measured on data: the fraction of nonzero (spiking) input elements per layer.

A layer "consumes spikes" when it is

- an ``nn.Conv2d`` or ``nn.Linear`` (``SeqConv2d`` / ``SeqLinear`` included) whose input
  tensor is the output of a spiking neuron (``LIF``, ``IF``, ``PLIF``) or a view of it
  (a reshape, a slice); or
- a :class:`~sresformer.layers.SpikingMatmul`: its binary operand is counted (the right
  one for ``spike='r'``, the left for ``'l'``, both together for ``'both'``).

The rate of a layer is ``nonzero elements / all elements`` summed over every call and
every batch (an average over all elements, so batches of different sizes weigh by size),
a number in [0, 1] per time step and neuron. Keys are names from ``named_modules()``.

Layers whose input is not a neuron's output are NOT listed: the stem conv (it acts on
real-valued pixels; a chip charges it as MACs, not synaptic events) and the classifier
(it reads the average-pooled, real-valued residual stream). Whether an input is a
neuron's output is decided by object identity (the neuron's forward hook records its
output through a weak reference), not by looking at the values, so a real-valued tensor
that happens to hold only 0 and 1 is never mistaken for spikes.
"""

from __future__ import annotations

import weakref
from typing import Iterable

import torch
from torch import nn

from .layers import SpikingMatmul
from .neurons import IF, LIF, PLIF

#: Module types whose outputs are spikes.
NEURON_TYPES: tuple[type, ...] = (LIF, IF, PLIF)
#: Module types that may consume spikes (Conv/Linear only when fed by a neuron).
SYNAPSE_TYPES: tuple[type, ...] = (nn.Conv2d, nn.Linear)


def _root(t: torch.Tensor) -> torch.Tensor:
    """The tensor a view was taken from (itself if it is not a view)."""
    return t._base if t._base is not None else t


class FiringRecorder:
    """Context manager counting the nonzero input elements of every spike-consuming layer.

    ``with FiringRecorder(model) as rec: model(x)`` then ``rec.rates()``. Counts accumulate
    over every forward while attached; :meth:`counts` / :meth:`load_counts` expose them as
    one ``[layers, 2]`` float64 tensor (nonzero, total) so distributed ranks can sum them.
    """

    def __init__(self, model: nn.Module, neuron_types: tuple[type, ...] = NEURON_TYPES):
        self.model = getattr(model, "module", model)  # unwrap DistributedDataParallel
        self.neuron_types = neuron_types
        self.names = [n for n, m in self.model.named_modules()
                      if isinstance(m, SYNAPSE_TYPES + (SpikingMatmul,))]
        self._index = {n: i for i, n in enumerate(self.names)}
        self._counts = torch.zeros(len(self.names), 2, dtype=torch.float64)
        self._device_counts: dict[torch.device, torch.Tensor] = {}
        self._spikes: dict[int, weakref.ref] = {}
        self._handles: list = []

    # -- hooks -----------------------------------------------------------------------
    def __enter__(self) -> "FiringRecorder":
        self._handles.append(self.model.register_forward_pre_hook(lambda *_: self._spikes.clear()))
        for name, m in self.model.named_modules():
            if isinstance(m, self.neuron_types):
                self._handles.append(m.register_forward_hook(self._on_neuron))
            elif isinstance(m, SpikingMatmul):
                self._handles.append(m.register_forward_pre_hook(self._on_matmul(name, m.spike)))
            elif isinstance(m, SYNAPSE_TYPES):
                self._handles.append(m.register_forward_pre_hook(self._on_synapse(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._spikes.clear()
        self._gather()

    def _on_neuron(self, module, args, out) -> None:
        self._spikes[id(out)] = weakref.ref(out)

    def _is_spikes(self, t: torch.Tensor) -> bool:
        for cand in (t, _root(t)):
            ref = self._spikes.get(id(cand))
            if ref is not None and ref() is cand:
                return True
        return False

    def _on_synapse(self, name: str):
        def hook(module, args):
            if args and isinstance(args[0], torch.Tensor) and self._is_spikes(args[0]):
                self._add(name, (args[0],))
        return hook

    def _on_matmul(self, name: str, spike: str):
        def hook(module, args):
            left, right = args[0], args[1]
            self._add(name, {"l": (left,), "r": (right,), "both": (left, right)}[spike])
        return hook

    def _add(self, name: str, tensors: tuple[torch.Tensor, ...]) -> None:
        dev = tensors[0].device
        acc = self._device_counts.get(dev)
        if acc is None:  # counts stay on the device: no host sync per layer and batch
            acc = self._device_counts[dev] = torch.zeros(len(self.names), 2, dtype=torch.float64, device=dev)
        i = self._index[name]
        with torch.no_grad():
            for t in tensors:
                acc[i, 0] += torch.count_nonzero(t).to(torch.float64)
                acc[i, 1] += t.numel()

    def _gather(self) -> None:
        for acc in self._device_counts.values():
            self._counts += acc.cpu()
        self._device_counts.clear()

    # -- results ---------------------------------------------------------------------
    def counts(self) -> torch.Tensor:
        """``[len(self.names), 2]`` float64 on CPU: nonzero and total input elements per layer."""
        self._gather()
        return self._counts.clone()

    def load_counts(self, counts: torch.Tensor) -> None:
        """Replace the counts (e.g. with their sum over distributed ranks)."""
        self._gather()
        self._counts = counts.detach().to("cpu", torch.float64).clone()

    def rates(self) -> dict[str, float]:
        """``{module name: fraction of nonzero input elements}`` for every layer that saw spikes."""
        c = self.counts()
        return {n: float(c[i, 0] / c[i, 1]) for i, n in enumerate(self.names) if c[i, 1] > 0}


@torch.no_grad()
def measure_firing_rates(model: nn.Module, batches: Iterable, device: torch.device | str | None = None
                         ) -> dict[str, float]:
    """Per-layer input firing rates (fractions in [0, 1]) of ``model`` in eval mode on ``batches``.

    ``batches`` yields ``x`` or ``(x, y)`` as a DataLoader gives them: images ``[B, C, H, W]``
    or sequences ``[B, T, C, H, W]`` (transposed here to the model's ``[T, B, ...]``). The
    model's training mode is restored afterwards. See the module docstring for which
    layers are listed.
    """
    from .evaluate import model_input

    was_training = model.training
    model.eval()
    try:
        with FiringRecorder(model) as rec:
            for batch in batches:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                x = model_input(x)
                model(x.to(device) if device is not None else x)
    finally:
        model.train(was_training)
    return rec.rates()
