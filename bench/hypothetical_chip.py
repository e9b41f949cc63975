"""Write a HYPOTHETICAL chip file: a built-in chip with its system-size and fan-out limits lifted.

Spikingresformer_ti at 224 does not fit any Loihi system built: on ``loihi2`` it needs about
1,930 chips (Intel's largest system, Hala Point, holds 1,152), and as this mapping cuts layers
(consecutive compartments per core) a core of its first attention sends to more cores than a
Loihi 2 core's fan-out limit (4,096). ``export`` refuses both, as it should. To measure what the
toolchain itself costs at that size (export memory, simulator set-up, time per image), this
script writes a chip file with the same cores, formats and energy table as the base chip but
``max_system_chips = 0`` (no system limit) and ``max_fan_out`` lifted. Its ``name`` says
``hypothetical``, so no figure from it passes for the silicon profile's; it is kept out of
``hw_sim/profiles`` on purpose.

    python bench/hypothetical_chip.py [--base loihi2] --out runs/ti/loihi2-unbounded.toml
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LIFTED_FAN_OUT = 1 << 30   # the chip file's own upper bound for max_fan_out (hw_sim/chips.py)


def chip_variant(base: str, out: Path, name: str, fields: dict[str, str]) -> Path:
    """Write ``out``: the built-in chip file ``base`` with its ``[chip]`` name set to ``name`` and each
    ``[chip]`` key of ``fields`` given the line ``fields[key]``; every other line, the energy table
    included (the same per-event costs), as it is."""
    lines, section = [], None
    for line in (ROOT / "hw_sim" / "profiles" / f"{base}.toml").read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key.startswith("["):
            section = key
        if section == "[chip]" and key == "name":
            line = f'name = "{name}"   # text; NOT a chip built: {base} with some fields changed'
        elif section == "[chip]" and key in fields:
            line = f"{key} = {fields[key]}"
        lines.append(line)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out


def unbounded_chip(base: str, out: Path) -> Path:
    """Write ``out``: the built-in chip ``base`` with no system-size limit and the fan-out limit lifted."""
    return chip_variant(base, out, f"{base}-hypothetical-unbounded", {
        "max_fan_out": f"{LIFTED_FAN_OUT}   # count; lifted (hypothetical): no fan-out limit",
        "max_system_chips": "0   # count; lifted (hypothetical): any number of chips"})


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="loihi2", choices=["loihi2", "loihi2-opmem", "loihi1"])
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    path = unbounded_chip(args.base, args.out)
    print(path)
    return path


if __name__ == "__main__":
    main()
