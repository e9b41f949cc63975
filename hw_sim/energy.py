"""Energy of an inference from per-layer operation counts, under a named convention.

Conventions (per image, per inference of T steps):

- ``standard``: ``ac_pj x ACs + mac_pj x MACs``: every spike-driven accumulate (convs,
  linear layers, DSSA's gated accumulations) plus every multiply-accumulate of a layer
  that reads real values (the stem conv on pixels, charged once per image because a
  static image's stem output is the same at every step; the classifier on the pooled
  real-valued stream). The Spikformer lineage's ``0.9 x SOPs + 4.6 x first-conv MACs``.
- ``paper``: SpikingResformer's own convention, ``ac_pj x SOPs`` of every conv, linear
  and DSSA matmul except the stem conv and the classifier.

MA attention gates (role ``MA gate``: MA-SNN's channel / spatial gates, real-valued
multiplications on the embedded processor) are charged ``ac_pj x`` their pooling ACs
``+ mac_pj x`` their MACs in **both** conventions: SpikingResformer's paper has no such
gates, and pricing a multiplication at the accumulate price would hide their cost (MA-SNN's
own energy estimate also counts the attention's multiplications as MACs).

The per-event prices come from an :class:`hw_sim.chips.EnergyProfile` (default
``paper-45nm``: 0.9 pJ per AC, 4.6 pJ per MAC, Horowitz, ISSCC 2014).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .chips import EnergyProfile, load_energy_profile

CONVENTIONS = ("standard", "paper")
PJ = 1e-12


@dataclass(frozen=True)
class LayerEnergy:
    """One row of the energy report (per image, one inference)."""

    name: str
    role: str
    macs: float         # dense MACs (what an ANN of the same shape would do)
    firing_rate: float  # input firing rate (fraction of non-zero inputs)
    ac: float
    mac: float
    sops: float         # the SOPs the convention charges
    energy_j: float


def layer_role(name: str) -> str:
    """A readable role for a SpikingResformer module name (stem, DSSA matmul, FFN conv, ...)."""
    rules = [(r"\.attn$", "MA gate"),  # first: a gate inside an FFN branch is named ...up.0.attn
             (r"^prologue\.", "stem conv"), (r"^classifier$", "classifier"), (r"\.matmul\d$", "DSSA matmul"),
             (r"\.W$", "DSSA conv (pxp)"), (r"\.Wproj$", "DSSA projection"), (r"\.up\.", "FFN up 1x1"),
             (r"\.conv\.\d+\.", "FFN grouped 3x3"), (r"\.down\.", "FFN down 1x1"),
             (r"^layers\.\d+\.0\.conv$", "downsample 3x3")]
    for pattern, role in rules:
        if re.search(pattern, name):
            return role
    return "layer"


def _charged(name: str, convention: str) -> bool:
    return convention == "standard" or not (name.startswith("prologue.") or name == "classifier")


def price(layers: list[dict], convention: str = "standard", profile: EnergyProfile | str = "paper-45nm") -> dict:
    """Energy report from per-image layer counts.

    ``layers``: dicts with ``name``, ``dense_macs``, ``ac``, ``mac`` and ``firing_rate``
    (per image). Returns ``{'convention', 'profile', 'layers': [...], 'total': {...}}``;
    the totals are the sums of the rows.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if isinstance(profile, str):
        profile = load_energy_profile(profile)
    rows = []
    for layer in layers:
        name = layer["name"]
        charged = _charged(name, convention)
        ac = layer["ac"] if charged else 0.0
        mac = layer["mac"] if charged and convention == "standard" else 0.0
        if layer_role(name) == "MA gate":   # multiplications stay MACs in every convention
            ac, mac = layer["ac"], layer["mac"]
        elif convention == "paper" and charged:
            ac = layer["ac"] + layer["mac"]  # the paper charges every SOP it counts at the AC price
        energy = (ac * profile.ac_pj + mac * profile.mac_pj) * PJ
        rows.append(LayerEnergy(name, layer_role(name), float(layer["dense_macs"]), float(layer["firing_rate"]),
                                float(ac), float(mac), float(ac + mac), energy))
    total = {k: sum(getattr(r, k) for r in rows) for k in ("macs", "ac", "mac", "sops", "energy_j")}
    return {"convention": convention, "profile": profile.name,
            "stem": "stem MACs charged once per image (a static image's stem output is the same at every step)",
            "layers": [r.__dict__ for r in rows], "total": total}
