"""One batch's sums as plain JSON values, and their exact merge in batch order.

``simulate()`` used to add every batch straight into its totals. To shard a dataset over
processes (:mod:`hw_sim.shard`) and to resume from a results file (:mod:`hw_sim.results`),
a batch's contribution is first taken out as a *partial*: a dict of lists, ints and floats
(float64, so ``json`` round-trips every value exactly: ``repr`` of a float is exact).

Exactness: counts (core counts, embedded ops, layer sums, correct / agreed / n, slowest,
saturations, spikes per chip step) are integer-valued float64 sums, exact in any order below
2**53. The latency sums (``lat``, ``lat_pipe``), ``step_total``, ``busy`` and the per-step
times (``step_s``) are float sums of non-integers: their value depends on the order of the
additions. :class:`Totals` therefore adds partials in batch order, starting from zero, the
same additions a single-process run makes, and the batches keep the single-process batching
(a shard is a set of whole batches): the merged totals are bit-identical to that run's.
"""

from __future__ import annotations

import torch

from .counters import CORE_KEYS, EMBEDDED_KEYS, merge_layers
from .per_step import PerStep, shifted_spikes

#: keys every partial has (a results file's ``sums`` are checked against them)
PARTIAL_KEYS = ("n", "correct", "agreed", "core", "embedded", "layers", "saturated", "lat", "lat_pipe",
                "step_total", "busy", "slowest", "step_s", "step_spikes")


def _plain(v):
    """A JSON-exact scalar: ints stay ints, everything else becomes a float64."""
    return v if isinstance(v, int) and not isinstance(v, bool) else float(v)


def batch_partial(counts, tm: dict, delays, correct: int, agreed: int, saturated: dict[str, int]) -> dict:
    """The sums of one batch: ``counts`` (:class:`hw_sim.counters.Counts`), its timing ``tm``
    (:func:`hw_sim.cycles.timing`: seconds and ns), ``delays`` (the cores' pipeline delays, steps),
    ``correct`` and ``agreed`` (samples), ``saturated`` (values clipped, per process)."""
    return {
        "n": int(counts.batch), "correct": int(correct), "agreed": int(agreed),
        "core": {k: counts.core[k].sum((0, 1)).tolist() for k in CORE_KEYS},
        "embedded": {k: float(counts.embedded[k].sum()) for k in EMBEDDED_KEYS},
        "layers": {name: {k: (v if k == "kind" else _plain(v)) for k, v in rec.items()}
                   for name, rec in counts.layers.items()},
        "saturated": {name: int(k) for name, k in saturated.items()},
        "lat": float(tm["latency_s"].sum()), "lat_pipe": float(tm["latency_pipelined_s"].sum()),
        "step_total": float(tm["step_total_ns"]),
        "busy": torch.as_tensor(tm["busy_ns"]).double().tolist(),
        "slowest": torch.as_tensor(tm["slowest"]).long().tolist(),
        "step_s": tm["pipe_step_s"].double().sum(1).tolist(),
        "step_spikes": shifted_spikes(counts.core["spikes"], delays).tolist(),
    }


class Totals:
    """Partials added in the order given (callers give batch order): the totals ``summarize`` reads."""

    def __init__(self, ncores: int):
        self.core = {k: torch.zeros(ncores, dtype=torch.float64) for k in CORE_KEYS}
        self.embedded = {k: 0.0 for k in EMBEDDED_KEYS}
        self.layers: dict[str, dict] = {}
        self.busy = torch.zeros(ncores, dtype=torch.float64)
        self.slowest = torch.zeros(ncores, dtype=torch.int64)
        self.lat = self.lat_pipe = self.step_total = 0.0
        self.correct = self.agreed = self.n = 0
        self.saturated: dict[str, int] = {}
        self.steps = PerStep()   # step time and spikes per chip step (the pipeline fill)

    def add(self, p: dict) -> None:
        """Add one batch's partial (from :func:`batch_partial`, possibly read back from JSON)."""
        for k in CORE_KEYS:
            self.core[k] += torch.tensor(p["core"][k], dtype=torch.float64)
        for k in EMBEDDED_KEYS:
            self.embedded[k] += p["embedded"][k]
        merge_layers(self.layers, p["layers"])
        for name, k in p["saturated"].items():
            self.saturated[name] = self.saturated.get(name, 0) + k
        self.lat += p["lat"]
        self.lat_pipe += p["lat_pipe"]
        self.step_total += p["step_total"]
        self.busy += torch.tensor(p["busy"], dtype=torch.float64)
        self.slowest += torch.tensor(p["slowest"], dtype=torch.int64)
        self.steps.add_sums(torch.tensor(p["step_s"], dtype=torch.float64),
                            torch.tensor(p["step_spikes"], dtype=torch.float64), p["n"])
        self.correct += p["correct"]
        self.agreed += p["agreed"]
        self.n += p["n"]
