"""``sresformer energy``: per-layer SOPs, firing rates and energy of a model on data."""

from __future__ import annotations

import json

import click

from .options import batch_option, limit_option


def _per_image(rec) -> dict:
    n = max(rec.images, 1)
    return {"name": rec.name, "dense_macs": rec.dense_macs / n, "ac": rec.ac / n, "mac": rec.mac / n,
            "firing_rate": rec.firing_rate}


def checkpoint_layer_counts(source: str, data: str, limit: int, batch_size: int) -> tuple[list[dict], int]:
    """Per-image layer counts of a checkpoint (or NIR model) measured on ``limit`` test images of ``data``.

    Under torchrun each rank counts its block of whole batches (:func:`hw_sim.shard.run_block`) and rank 0
    adds the ranks' counts (integers: exact in any order); the other ranks get ``([], 0)``."""
    from torch.utils.data import DataLoader

    from hw_sim import shard
    from sresformer.data import open_dataset
    from sresformer.evaluate import limited, model_input
    from sresformer.progress import track
    from sresformer.sops import count_ops

    from .common import load_model_source

    model = load_model_source(source)
    bundle = open_dataset(data, img_size=model.img_size, num_classes=model.num_classes,
                          in_channels=model.in_channels, T=None, augment=False)
    subset = limited(bundle.test, limit)

    def count(share):
        loader = track(DataLoader(share, batch_size=batch_size, shuffle=False), "energy", unit="batch")
        return count_ops(model, (model_input(x) for x, _ in loader))

    parts = shard.run_block(count, subset, batch_size)
    if parts is None:
        return [], 0
    return [_per_image(r) for r in merged_ops(parts)], len(subset)


def merged_ops(parts: list[list]) -> list:
    """The ranks' :class:`sresformer.sops.LayerOps` lists (in batch order) as one: counts added per layer."""
    total: dict = {}
    for part in parts:
        for rec in part:
            t = total.get(rec.name)
            if t is None:
                total[rec.name] = rec
                continue
            for f in ("dense_macs", "ac", "mac", "input_nonzero", "input_elements", "images"):
                setattr(t, f, getattr(t, f) + getattr(rec, f))
            t.binary_input = t.binary_input and rec.binary_input
    return list(total.values())


def artifact_fields(pg, mapping) -> dict:
    """The keys ``energy --json`` adds for an artifact: where the rates come from, the chip, the attention."""
    from hw_sim.prodneuron import attention_of, attention_phrase

    attention = mapping.attention or attention_of(pg)
    return {"firing_rates": "measured on the data by the chip simulator (integer model)",
            "chip": mapping.chip.get("name"), "attention": attention, "attention_text": attention_phrase(attention)}


def mask_sweep_report(source: str, data: str, ratios_text: str, modules_text: str | None, convention: str,
                      chip_profile: str, limit: int, batch_size: int) -> dict:
    """Accuracy and energy per image of a checkpoint for every spike-mask ratio in ``ratios_text``."""
    from pathlib import Path

    from torch.utils.data import DataLoader

    from hw_sim.energy import price
    from sresformer.checkpoint import load_checkpoint
    from sresformer.data import open_dataset
    from sresformer.evaluate import limited
    from sresformer.mask_sweep import parse_ratios, sweep_mask
    from sresformer.masking import DEFAULT_MODULES, SpikeMaskError, parse_spec

    ratios = parse_ratios(ratios_text)
    if Path(source).suffix in (".loihi", ".nir", ".net"):
        raise SpikeMaskError(f"--sweep-mask needs a checkpoint (each ratio re-gates the float model); {source} is "
                             "not one: export one artifact per ratio with 'sresformer export --spike-mask' instead")
    model = load_checkpoint(source)
    own = getattr(model, "spike_mask_spec", None)
    modules = parse_spec(f"0:{modules_text}").modules if modules_text else (own.modules if own else DEFAULT_MODULES)
    seed = own.seed if own else 0
    bundle = open_dataset(data, img_size=model.img_size, num_classes=model.num_classes,
                          in_channels=model.in_channels, T=None, augment=False)
    loader = DataLoader(limited(bundle.test, limit), batch_size=batch_size, shuffle=False)
    rows = []
    for row in sweep_mask(model, loader, ratios, modules, seed):
        rep = price(row.pop("layers"), convention, chip_profile)
        rows.append({**row, "sops": rep["total"]["sops"], "ac": rep["total"]["ac"], "mac": rep["total"]["mac"],
                     "energy_j": rep["total"]["energy_j"]})
        profile = rep["profile"]
    return {"source": source, "data": data, "convention": convention, "profile": profile,
            "modules": list(modules), "seed": seed, "trained_with": str(own) if own else None,
            "gate": "deterministic (evaluation) gate of sresformer.spike_gate, as on the chip", "rows": rows}


def _sweep_table(rep: dict) -> str:
    lines = [f"spike-mask sweep of {rep['source']} on {rep['data']} ({rep['rows'][0]['samples']} test images), "
             f"modules {','.join(rep['modules'])}, convention {rep['convention']}, profile {rep['profile']}",
             f"{'ratio':>6} {'accuracy':>9} {'M SOPs':>9} {'energy (uJ)':>12}"]
    for r in rep["rows"]:
        lines.append(f"{r['ratio']:>6.2f} {r['accuracy']:>9.2%} {r['sops'] / 1e6:>9.3f} {r['energy_j'] * 1e6:>12.4f}")
    return "\n".join(lines) + "\n"


def _emit_compare(sources, data, chip_profile, limit, batch_size, fmt, plot, chip, chips) -> None:
    """``--compare``: one table (and plot) of every source side by side, on every chip of ``chips``."""
    from hw_sim import compare_report

    from .compare import compare

    rep = compare(list(sources), data, limit, chip_profile, chip=chip, batch_size=batch_size,
                  chips=tuple(chips) or ("loihi2",))
    if plot:
        compare_report.plot(rep, plot)
    if fmt == "json":
        click.echo(json.dumps(rep))
    elif fmt == "csv":
        click.echo(compare_report.to_csv(rep), nl=False)
    else:
        click.echo(compare_report.to_markdown(rep), nl=False)


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--data", default="digits", show_default=True, help="Dataset spec the rates are measured on.")
@click.option("--convention", type=click.Choice(["standard", "paper"]), default="standard", show_default=True,
              help="standard: 0.9 pJ x ACs + 4.6 pJ x MACs of real-valued layers; paper: 0.9 pJ x SOPs "
                   "without the stem and classifier.")
@click.option("--chip-profile", default="paper-45nm", show_default=True,
              help="Energy profile (pJ per event, ns per event): a built-in name (paper-45nm, loihi1, loihi2; "
                   "loihi is loihi1) or a TOML file.")
@limit_option("Test images to measure on", default=128)
@batch_option(32, "Test images per forward pass")
@click.option("--json", "fmt", flag_value="json", help="One JSON object on stdout.")
@click.option("--markdown", "fmt", flag_value="markdown", help="A Markdown table.")
@click.option("--csv", "fmt", flag_value="csv", help="CSV, one row per layer.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Write energy and firing rate per layer as PNG.")
@click.option("--sweep-mask", default=None, metavar="R1,R2,...",
              help="CKPT only: accuracy and energy for each random spike-mask ratio (the MST trade-off curve); "
                   "--plot then draws accuracy against energy.")
@click.option("--mask-modules", default=None, metavar="MODULES",
              help="Modules the sweep masks: attn, mlp or neuron-name globs, comma-separated (default: the "
                   "checkpoint's own mask modules, else attn).")
@click.option("--compare", is_flag=True,
              help="Compare every SOURCE (CKPT, MODEL.nir, ARTIFACT or a zoo model name with --data synthetic): "
                   "params, SOPs, energy per convention, simulated chip energy and latency, accuracy.")
@click.option("--no-chip", is_flag=True, help="With --compare: skip the Loihi lowering and simulation.")
@click.option("--chip", "chips", multiple=True, metavar="NAME|FILE",
              help="With --compare: lower every model for this chip (repeat it: --chip loihi2 --chip loihi2-opmem "
                   "puts DSSA on today's silicon beside a hypothetical operand-memory core; default loihi2).")
def energy(sources, data, convention, chip_profile, limit, batch_size, fmt, plot, sweep_mask, mask_modules,
           compare, no_chip, chips):
    """Energy per image of CKPT, ARTIFACT (.loihi) or a lava-dl netx NETWORK.net on DATA: per-layer dense MACs,
    input rate, exact SOPs, energy.

    With --compare, several SOURCES side by side in one table and plot. Under torchrun (torch.distributed,
    gloo) each process counts a share of whole batches and rank 0 prints the merged report, equal to one
    process's (--compare and --sweep-mask run in one process)."""
    from hw_sim import shard
    from hw_sim.chips import load_energy_profile
    from hw_sim.report import plot as plot_report
    from hw_sim.report import plot_tradeoff, to_csv, to_markdown
    from sresformer.errors import UserError
    from sresformer.fileio import check_output

    load_energy_profile(chip_profile)   # a bad profile file is refused before any counting
    if plot is not None:
        check_output(plot, sources, option="--plot")
    if shard.env_rank()[1] > 1 and (compare or sweep_mask is not None):
        raise UserError("--compare and --sweep-mask run in one process: start them without torchrun")
    if compare:
        if sweep_mask is not None or mask_modules is not None:
            raise UserError("--compare and --sweep-mask are separate reports: give one of them")
        _emit_compare(sources, data, chip_profile, limit, batch_size, fmt, plot, chip=not no_chip, chips=chips)
        return
    if no_chip:
        raise UserError("--no-chip goes with --compare")
    if chips:
        raise UserError("--chip goes with --compare (an artifact keeps the chip it was exported for)")
    if len(sources) != 1:
        raise UserError(f"energy takes one SOURCE ({len(sources)} given); to compare several, add --compare")
    source = sources[0]

    if sweep_mask is not None:
        rep = mask_sweep_report(source, data, sweep_mask, mask_modules, convention, chip_profile, limit, batch_size)
        if plot:
            plot_tradeoff(rep, plot)
        if fmt == "json":
            click.echo(json.dumps(rep))
        elif fmt == "csv":
            keys = ("ratio", "accuracy", "samples", "ac", "mac", "sops", "energy_j")
            click.echo(",".join(keys))
            for r in rep["rows"]:
                click.echo(",".join(str(r[k]) for k in keys))
        else:
            click.echo(_sweep_table(rep), nl=False)
        return
    if mask_modules is not None:
        raise UserError("--mask-modules goes with --sweep-mask")

    with shard.job() as (rank, _):
        report = _layer_report(source, data, convention, chip_profile, limit, batch_size)
    if rank != 0:
        return
    if plot:
        plot_report(report, plot)
    if fmt == "json":
        click.echo(json.dumps(report))
    elif fmt == "csv":
        click.echo(to_csv(report), nl=False)
    else:
        click.echo(to_markdown(report), nl=False)


def _layer_report(source, data, convention, chip_profile, limit, batch_size) -> dict:
    """The priced per-layer report of one SOURCE (an artifact's counts from the simulator, a model's own);
    None on a torchrun rank other than 0 (rank 0 holds the merged counts)."""
    from hw_sim import shard
    from hw_sim.energy import price

    if source.endswith((".loihi", ".net")):   # exact counts from the chip simulator (layer = process)
        import tempfile

        from hw_sim.artifact import read_artifact
        from hw_sim.simulate import layer_counts

        from .simulate_cmd import artifact_of

        with tempfile.TemporaryDirectory(prefix="sresformer-energy-") as tmp:   # a netx network: exported first
            artifact = artifact_of(source, data, tmp)
            pg, mapping, _ = read_artifact(artifact)
            layers, samples = layer_counts(artifact, data, limit, batch_size)
        chip = artifact_fields(pg, mapping)
        measured = chip.pop("firing_rates")
    else:
        layers, samples = checkpoint_layer_counts(source, data, limit, batch_size)
        measured = "measured on the data by running the model"
        chip = {"chip": None, "attention": None}   # the float model's own counts: no chip lowering
    if shard.world()[0] != 0:
        return None
    report = price(layers, convention, chip_profile)
    report.update({"source": source, "data": data, "samples": samples, "firing_rates": measured, **chip})
    return report
