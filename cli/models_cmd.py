"""``sresformer models``: the registry with parameter and MAC counts."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects on stdout.")
def models(as_json: bool):
    """List the model zoo: parameters, dense MACs per time step, input size, classes."""
    from sresformer import list_models
    from sresformer.complexity import COUNTED, describe

    rows = [describe(n) for n in list_models()]
    if as_json:
        click.echo(json.dumps([{k: r[k] for k in ("name", "params", "macs_per_step", "img_size",
                                                  "num_classes", "T", "family")} for r in rows]))
        return
    click.echo(f"{'model':26} {'params':>10} {'GMACs/step':>11} {'input':>9} {'classes':>8} {'T':>3}")
    for r in rows:
        click.echo(f"{r['name']:26} {r['params'] / 1e6:9.2f}M {r['macs_per_step'] / 1e9:11.3f} "
                   f"{r['img_size']:>4}x{r['img_size']:<4} {r['num_classes']:>8} {r['T']:>3}")
    click.echo(f"MACs: {COUNTED}.")
