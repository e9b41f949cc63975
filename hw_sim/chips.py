"""Chip and energy profiles as data: TOML files in ``hw_sim/profiles/`` with a source per constant.

Two kinds of description:

- :class:`Chip` - what a mapping must respect: cores per chip, neurons and synaptic
  memory per core, fan-in/fan-out, bit widths (``loihi2``, ``loihi1``).
- :class:`EnergyProfile` - what each event costs in energy (pJ) and time (ns)
  (``paper-45nm``, the literature's 0.9/4.6 pJ convention; ``loihi``, Davies et al. 2018).

Users pass a built-in name or a path to their own TOML file with the same keys.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from sresformer.errors import UserError

PROFILE_DIR = Path(__file__).parent / "profiles"


class ProfileError(UserError):
    """A chip or energy profile that is unknown, unreadable or incomplete."""


@dataclasses.dataclass(frozen=True)
class Chip:
    """A neuromorphic chip as a mapping target. Memory in bits, counts per core unless named per chip."""

    name: str
    description: str
    cores_per_chip: int
    neurons_per_core: int
    synapse_memory_bits: int
    max_fan_in: int
    max_fan_out: int
    weight_bits: int
    state_bits: int
    graded_spike_bits: int
    decay_bits: int
    embedded_processors: int
    mesh_cols: int


@dataclasses.dataclass(frozen=True)
class EnergyProfile:
    """Energy per event in picojoules and time per event in nanoseconds."""

    name: str
    description: str
    ac_pj: float
    mac_pj: float
    neuron_active_pj: float
    neuron_idle_pj: float
    spike_in_tile_pj: float
    hop_ew_pj: float
    hop_ns_pj: float
    synop_ns: float
    neuron_update_active_ns: float
    neuron_update_idle_ns: float
    spike_in_tile_ns: float
    hop_ew_ns: float
    hop_ns_ns: float
    barrier_ns: float
    barrier_max_ns: float | None = None


def _load(kind: str, cls, name_or_path: str):
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.exists()):
        path = PROFILE_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise ProfileError(f"unknown {kind} {name_or_path!r}; built-in: {', '.join(available(kind))}, "
                               "or give a .toml file")
    try:
        table = tomllib.loads(path.read_text())[kind]
    except FileNotFoundError:
        raise ProfileError(f"{kind} profile {path} does not exist") from None
    except (tomllib.TOMLDecodeError, KeyError, UnicodeDecodeError) as e:
        raise ProfileError(f"{path} is not a valid {kind} profile (needs a [{kind}] table): {e}") from None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = [n for n, f in fields.items() if f.default is dataclasses.MISSING]
    missing = [n for n in required if n not in table]
    unknown = [k for k in table if k not in fields]
    if missing or unknown:
        raise ProfileError(f"{path}: missing keys {missing}, unknown keys {unknown}")
    for k, v in table.items():
        if k not in ("name", "description") and not (isinstance(v, (int, float)) and v >= 0):
            raise ProfileError(f"{path}: {k} must be a non-negative number, got {v!r}")
    return cls(**table)


def available(kind: str) -> list[str]:
    """Names of the built-in profiles of ``kind`` ('chip' or 'energy')."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml") if f"[{kind}]" in p.read_text())


def load_chip(name_or_path: str = "loihi2") -> Chip:
    """A built-in chip by name (``loihi2``, ``loihi1``) or a TOML file with a ``[chip]`` table."""
    return _load("chip", Chip, name_or_path)


def load_energy_profile(name_or_path: str = "paper-45nm") -> EnergyProfile:
    """A built-in energy profile (``paper-45nm``, ``loihi``) or a TOML file with an ``[energy]`` table."""
    return _load("energy", EnergyProfile, name_or_path)
