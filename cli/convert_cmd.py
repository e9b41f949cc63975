"""``sresformer convert``: a QCFS ANN checkpoint (the MST family) to its SNN checkpoint."""

from __future__ import annotations

import click

from .options import t_option


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="SNN checkpoint to write.")
@t_option("Time steps of the SNN (default 32)")
@click.option("--product", type=click.Choice(["cumulative", "per-step"]), default="cumulative", show_default=True,
              help="Attention products: the product of the running spike counts (a product of rates) or MST's per-step "
                   "q_t k_t^T.")
def convert(source, out, T, product):
    """Convert ANN SOURCE (QCFS activations) to a soft-reset IF SNN checkpoint that 'sresformer eval' reads."""
    from sresformer.checkpoint import load_checkpoint, save_checkpoint
    from sresformer.convert import convert_model, converted_meta
    from sresformer.fileio import check_output

    check_output(out, [source], option="--out")
    ann = load_checkpoint(source)
    T = T or 32
    snn = convert_model(ann, T=T, product=product)
    save_checkpoint(snn, out, **converted_meta(getattr(ann, "checkpoint_meta", {}), source, T, product))
    click.echo(f"{out}: {snn.model_name} SNN, T = {T}, {product} products (from {source})")
