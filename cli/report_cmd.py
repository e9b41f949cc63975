"""``sresformer report``: one self-contained HTML page of a model on a chip (simulate + energy, plotted)."""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

import click

from .options import batch_option, limit_option

# the energy convention of the page's per-layer table (hw_sim.energy: every AC and MAC charged)
CONVENTION = "standard"


def lowered(source: str, data: str, chip: str | None, tmp: str) -> str:
    """The artifact of ``source``: a ``.loihi`` file itself (its chip fixed at export), a NIR or netx file as
    ``simulate`` lowers it, a checkpoint exported as ``export --target loihi`` does (calibrated on ``data``)."""
    from sresformer.errors import UserError

    from .simulate_cmd import artifact_of

    suffix = Path(source).suffix
    if suffix == ".loihi":
        if chip is not None:
            raise UserError(f"--chip does not apply to {source}: an artifact keeps the chip it was exported for")
        return source
    if suffix in (".nir", ".net"):
        return artifact_of(source, data, tmp, chip=chip)
    from exporters.loihi.export import export_loihi

    out = str(Path(tmp) / (Path(source).stem + ".loihi"))
    export_loihi(source, out, calib_data=data, chip=chip)
    return out


def commands(source, data, chip, profile, timing_model, limit, out) -> list[str]:
    """The command lines that reproduce the page's figures (the artifact exported first where it is not one)."""
    q = shlex.quote
    common = f"--data {q(data)} --chip-profile {q(profile)} --timing {timing_model}" + (
        f" --limit {limit}" if limit else "")
    target, lines = source, []
    if Path(source).suffix != ".loihi" and (chip is not None or Path(source).suffix not in (".nir", ".net")):
        target = str(Path(source).with_suffix(".loihi"))
        calib = f" --calib-data {q(data)}" if Path(source).suffix != ".net" else ""
        lines.append(f"sresformer export {q(source)} --target loihi{calib}"
                     + (f" --chip {q(chip)}" if chip else "") + f" --out {q(target)}")
    lines.append(f"sresformer simulate {q(target)} {common} --json")
    lines.append(f"sresformer energy {q(target)} --data {q(data)} --chip-profile {q(profile)}"
                 + (f" --limit {limit}" if limit else "") + " --json")
    lines.append(f"sresformer report {q(source)} {common}" + (f" --chip {q(chip)}" if chip else "")
                 + f" --out {q(out)}")
    return lines


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--data", default="digits", show_default=True, help="Dataset spec; its test split is simulated.")
@click.option("--chip", default=None, help="CKPT or MODEL.nir: the chip to lower onto (loihi2, loihi2-opmem, "
                                           "loihi1 or a TOML file; default loihi2). An artifact keeps its own.")
@click.option("--chip-profile", default=None,
              help="Energy and timing profile: a built-in name (paper-45nm, loihi1, loihi2) or a TOML file "
                   "(default: the chip's own profile).")
@click.option("--timing", "timing_model", type=click.Choice(["simple", "detailed"]), default="simple",
              show_default=True, help="Time model, as for 'sresformer simulate'.")
@limit_option("Simulate only the first N test samples", default=32)
@batch_option(32, "Samples per executor run")
@click.option("--out", required=True, type=click.Path(), help="HTML file to write (atomically).")
def report(source, data, chip, chip_profile, timing_model, limit, batch_size, out):
    """One self-contained HTML page of SOURCE (CKPT, MODEL.nir, ARTIFACT.loihi or NETWORK.net) on a chip:
    summary, energy per term and per layer, the core map and the chip steps of one inference."""
    from hw_sim.artifact import read_artifact
    from hw_sim.chips import load_chip, load_energy_profile
    from hw_sim.energy import price
    from hw_sim.report_html import build_page
    from hw_sim.simulate import energy_rows
    from sresformer.fileio import atomic_path, check_output

    from .energy_cmd import artifact_fields
    from .simulate_cmd import simulate_summary

    check_output(out, [source])
    if chip is not None:
        load_chip(chip)                     # bad names fail before any work
    if chip_profile is not None:
        load_energy_profile(chip_profile)
    with tempfile.TemporaryDirectory(prefix="sresformer-report-") as tmp:
        artifact = lowered(source, data, chip, tmp)
        pg, mapping, export_report = read_artifact(artifact)
        profile_name = chip_profile or mapping.chip.get("energy_profile") or "paper-45nm"
        profile = load_energy_profile(profile_name)
        summary = simulate_summary(artifact, source, data, limit, profile, batch_size, timing_model)
    energy = price(energy_rows(summary["layers"]), CONVENTION, profile)
    energy.update({"source": source, "data": data, "samples": summary["samples"], **artifact_fields(pg, mapping)})
    page = build_page(summary, energy, mapping, profile, export_report,
                      commands(source, data, chip, profile_name, timing_model, limit, out))
    with atomic_path(out) as tmp_out:
        tmp_out.write_text(page, encoding="utf-8")
    click.echo(f"wrote {out} ({Path(out).stat().st_size / 1e6:.2f} MB)")
