"""Checks of a ``.loihi`` artifact's mapping against its own graph and chip, before use.

The mapping in a file must be one the mapper could have made for the file's graph: the
compartment groups, host and placement that ``plan_groups`` derives, every group's chunk
within the chip's limits as :mod:`hw_sim.resources` charges them (its per-core figures
recomputed and compared), its fan-out within ``max_fan_out``, and groups laid on
consecutive cores. The chip dict is validated by ``hw_sim.chips.Chip`` itself (one set of rules for
chip files and artifacts). Problems are ``artifact_check.Invalid``.
"""

from __future__ import annotations

import dataclasses
import math

from hw_sim.chips import Chip
from sresformer.errors import UserError

from .artifact_check import MAX_CORE_STEPS, MAX_CORES, Invalid, _number, _short, integer
from .mapping import Group, group_cost, plan_groups
from .processes import ProcessGraph

GROUP_FIELDS = tuple(f.name for f in dataclasses.fields(Group))


def check_chip(chip) -> dict:
    """The mapping's chip description: exactly the ``Chip`` fields, each valid as in a chip file."""
    if not isinstance(chip, dict):
        raise Invalid("/mapping chip must be a JSON object")
    known = {f.name for f in dataclasses.fields(Chip)}
    # the feature flags and the system size came after the first version-2 files: absent means the
    # chip lacks the feature (no limit known)
    optional = {f.name: f.default for f in dataclasses.fields(Chip) if f.default is not dataclasses.MISSING}
    chip = {k: v for k, v in optional.items() if k not in chip} | chip
    if set(chip) != known:
        odd = sorted(set(chip) ^ known)[0]
        raise Invalid(f"/mapping chip has {'unknown key' if odd in chip else 'no key'} {odd!r}")
    try:
        Chip(**chip)
    except (UserError, TypeError, ValueError) as e:
        raise Invalid(f"/mapping chip: {e}") from None
    return chip


def check_mapping(pg: ProcessGraph, chip: dict, raw_groups, host, placement) -> dict[str, Group]:
    """The groups, host and placement must be those ``plan_groups`` derives from the graph."""
    want, want_host, want_place = plan_groups(pg)
    if host != want_host:
        raise Invalid("/mapping host does not list the graph's static and embedded-processor processes")
    if not isinstance(placement, dict) or placement != want_place:
        odd = next((k for k in want_place if not isinstance(placement, dict) or placement.get(k) != want_place[k]),
                   "?")
        raise Invalid(f"/mapping placement of {odd!r} does not agree with the graph")
    if not isinstance(raw_groups, list) or not all(isinstance(g, dict) for g in raw_groups):
        raise Invalid("/mapping groups must be a JSON list of objects")
    if len(raw_groups) != len(want):
        raise Invalid(f"/mapping has {len(raw_groups)} groups, the graph has {len(want)}")
    groups: dict[str, Group] = {}
    core = 0
    for i, g in enumerate(raw_groups):
        if set(g) != set(GROUP_FIELDS):
            odd = sorted(set(g) ^ set(GROUP_FIELDS))[0]
            raise Invalid(f"/mapping group #{i} has {'unknown field' if odd in g else 'no field'} {odd!r}")
        name = g["name"]
        if not isinstance(name, str) or name not in want or name in groups:
            raise Invalid(f"/mapping group #{i} ({_short(name)}) is not a compartment group of the graph")
        groups[name] = _group(g, want[name], chip, core, group_cost(pg, want[name], Chip(**chip), want_host))
        core += groups[name].cores
        if core > MAX_CORES or core * pg.T > MAX_CORE_STEPS:
            raise Invalid(f"the mapping uses over {min(MAX_CORES, MAX_CORE_STEPS // pg.T)} cores, more than the "
                          f"simulator counts at T = {pg.T}")
    return groups


def _group(g: dict, exp: Group, chip: dict, first: int, cost) -> Group:
    """One group: plan fields as the graph gives them, a chunk that fits a core, cores laid in order."""
    where = f"/mapping group {exp.name!r}"
    for key in ("size", "operand_row_entries", "row_len"):
        if integer(g[key], f"{where} {key}", 0, 1 << 62) != getattr(exp, key):
            raise Invalid(f"{where}: {key} is {g[key]}, the graph gives {getattr(exp, key)}")
    m = g["members"]
    if not isinstance(m, list) or not all(isinstance(x, str) for x in m) or sorted(m) != sorted(exp.members):
        raise Invalid(f"{where}: members do not agree with the graph")
    spc = _number(g["synapses_per_compartment"], f"{where} synapses_per_compartment", 0.0, 1e12)
    if not math.isclose(spc, exp.synapses_per_compartment, rel_tol=1e-9, abs_tol=1e-9):
        raise Invalid(f"{where}: synapses_per_compartment does not agree with the graph's weights")
    chunk = integer(g["chunk"], f"{where} chunk", 1, min(chip["neurons_per_core"], exp.size))
    # any chunk that fits is a valid mapping (a latency objective spreads a group over more cores)
    if not cost.fits(chunk):
        raise Invalid(f"{where}: chunk {chunk} compartments do not fit a core of {chip['name']}")
    cores = integer(g["cores"], f"{where} cores", 1, MAX_CORES)
    if cores != math.ceil(exp.size / chunk):
        raise Invalid(f"{where}: {cores} cores do not hold {exp.size} compartments in chunks of {chunk}")
    if integer(g["first_core"], f"{where} first_core", 0, MAX_CORES) != first:
        raise Invalid(f"{where}: first_core is {g['first_core']}; groups take consecutive cores from 0 ({first})")
    c = cost.costs(chunk)
    figures = {"words_per_core": c.words(Chip(**chip)).max(), "axons_per_core": c.axons_in.max(),
               "synapses_per_core": c.synapses.max()}
    for key, value in figures.items():
        if integer(g[key], f"{where} {key}", 0, 1 << 62) != int(value):
            raise Invalid(f"{where}: {key} is {g[key]}, its chunk gives {int(value)}")
    fan = integer(g["fan_out_per_core"], f"{where} fan_out_per_core", 0, chip["max_fan_out"])
    return Group(exp.name, exp.size, list(m), spc, exp.operand_row_entries, exp.row_len, chunk, first, cores,
                 *(int(v) for v in figures.values()), fan)
