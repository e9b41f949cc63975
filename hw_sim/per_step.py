"""Per chip step figures of one inference: step time and spikes over the pipelined window.

The pipelined schedule (:mod:`hw_sim.cycles`) runs an inference in ``T + depth`` chip steps: a core
whose group has delay ``d`` works on data step ``t`` in chip step ``t + d``, so the first ``depth``
steps fill the pipeline (the deep layers have no data yet) and the last ``depth`` drain it. These
sums show that fill: :class:`PerStep` adds up every batch, :meth:`PerStep.summary` gives the means
per inference that ``simulate``'s summary carries as ``per_step``.
"""

from __future__ import annotations

import numpy as np
import torch

from .cycles import shifted


def shifted_spikes(spikes: torch.Tensor, delays: np.ndarray) -> torch.Tensor:
    """Spikes per chip step ``[T + depth]`` summed over samples and cores: ``spikes [T, B, cores]`` per
    data step, placed in the chip step each core works it (``delays``, steps)."""
    return shifted(spikes.double(), delays, int(delays.max(initial=0))).sum((1, 2))


class PerStep:
    """Batch sums of the chip step times (s) and spikes per chip step, ``T + depth`` steps long."""

    def __init__(self):
        self.step_s: torch.Tensor | None = None
        self.spikes: torch.Tensor | None = None
        self.n = 0

    def add(self, timing: dict, spikes: torch.Tensor, delays: np.ndarray) -> None:
        """One batch: ``timing`` from :func:`hw_sim.cycles.timing` (its ``pipe_step_s`` ``[T + depth, B]``),
        ``spikes [T, B, cores]`` per data step, placed in the chip step each core works it (``delays``)."""
        step = timing["pipe_step_s"].double().sum(1)
        self.add_sums(step, shifted_spikes(spikes, delays), spikes.shape[1])

    def add_sums(self, step: torch.Tensor, spk: torch.Tensor, n: int) -> None:
        """Add one batch's step times ``[T + depth]`` (s) and spikes ``[T + depth]``, summed over its ``n``
        samples (a partial of :mod:`hw_sim.partials`)."""
        self.step_s = step if self.step_s is None else self.step_s + step
        self.spikes = spk if self.spikes is None else self.spikes + spk
        self.n += n

    def summary(self, T: int, depth: int) -> dict:
        """Means per inference: ``step_time_s`` and ``spikes`` per chip step (lists of ``T + depth``), and
        the ``fill`` / ``drain`` steps (the first and last ``depth``, where not every core has data)."""
        m = max(self.n, 1)
        steps = T + depth
        zero = [0.0] * steps
        return {"chip_steps": steps, "T": T, "depth": depth,
                "step_time_s": (self.step_s / m).tolist() if self.step_s is not None else zero,
                "spikes": (self.spikes / m).tolist() if self.spikes is not None else zero,
                "fill": list(range(min(depth, steps))), "drain": list(range(max(T, 0), steps)),
                "note": "means per inference over the T + depth chip steps of the pipelined schedule; in a fill "
                        "step the deeper groups have no data yet, in a drain step the shallower ones are done"}
