"""``sresformer energy``: per-layer SOPs, firing rates and energy of a model on data."""

from __future__ import annotations

import json

import click


def _per_image(rec) -> dict:
    n = max(rec.images, 1)
    return {"name": rec.name, "dense_macs": rec.dense_macs / n, "ac": rec.ac / n, "mac": rec.mac / n,
            "firing_rate": rec.firing_rate}


def checkpoint_layer_counts(source: str, data: str, limit: int, batch_size: int) -> tuple[list[dict], int]:
    """Per-image layer counts of a checkpoint (or NIR model) measured on ``limit`` test images of ``data``."""
    from torch.utils.data import DataLoader

    from sresformer.data import open_dataset
    from sresformer.evaluate import limited, model_input
    from sresformer.sops import count_ops

    from .common import load_model_source

    model = load_model_source(source)
    bundle = open_dataset(data, img_size=model.img_size, num_classes=model.num_classes,
                          in_channels=model.in_channels, T=None, augment=False)
    subset = limited(bundle.test, limit)
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False)
    layers = count_ops(model, (model_input(x) for x, _ in loader))
    return [_per_image(r) for r in layers], len(subset)


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--data", default="digits", show_default=True, help="Dataset spec the rates are measured on.")
@click.option("--convention", type=click.Choice(["standard", "paper"]), default="standard", show_default=True,
              help="standard: 0.9 pJ x ACs + 4.6 pJ x MACs of real-valued layers; paper: 0.9 pJ x SOPs "
                   "without the stem and classifier.")
@click.option("--chip-profile", default="paper-45nm", show_default=True, help="Energy profile name or TOML file.")
@click.option("--limit", type=int, default=128, show_default=True, help="Test images to measure on.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--json", "fmt", flag_value="json", help="One JSON object on stdout.")
@click.option("--markdown", "fmt", flag_value="markdown", help="A Markdown table.")
@click.option("--csv", "fmt", flag_value="csv", help="CSV, one row per layer.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write energy and firing rate per layer as PNG.")
def energy(source, data, convention, chip_profile, limit, batch_size, fmt, plot):
    """Energy per image of CKPT or ARTIFACT (.loihi) on DATA: per-layer dense MACs, input rate, exact SOPs, energy."""
    from hw_sim.energy import price
    from hw_sim.report import plot as plot_report
    from hw_sim.report import to_csv, to_markdown

    if source.endswith(".loihi"):   # an artifact: exact counts from the chip simulator (layer = process)
        from hw_sim.simulate import layer_counts
        layers, samples = layer_counts(source, data, limit, batch_size)
        measured = "measured on the data by the chip simulator (integer model)"
    else:
        layers, samples = checkpoint_layer_counts(source, data, limit, batch_size)
        measured = "measured on the data by running the model"
    report = price(layers, convention, chip_profile)
    report.update({"source": source, "data": data, "samples": samples, "firing_rates": measured})
    if plot:
        plot_report(report, plot)
    if fmt == "json":
        click.echo(json.dumps(report))
    elif fmt == "csv":
        click.echo(to_csv(report), nl=False)
    else:
        click.echo(to_markdown(report), nl=False)
