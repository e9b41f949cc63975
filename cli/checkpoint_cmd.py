"""``sresformer import-official``: official SpikingResformer and Spikformer checkpoints into ours."""

from __future__ import annotations

import click

from .options import IMG, t_option


@click.command("import-official")
@click.argument("official", type=click.Path(dir_okay=False))
@click.option("--model", "model_name", required=True,
              help="Registry name, e.g. spikingresformer_ti or spikformer_8_512.")
@click.option("--img-size", type=IMG, default=None,
              help="Input side the weights were trained at, in pixels (default: the model's).")
@t_option("Time steps to record in the checkpoint (default: the model's)")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Our checkpoint to write.")
def import_official(official, model_name, img_size, T, out):
    """Convert a checkpoint saved by the official code (main.py or a bare state dict)."""
    from sresformer.checkpoint import save_checkpoint
    from sresformer.fileio import check_output
    from sresformer.official import REPOS
    from sresformer.official import import_official as convert
    from sresformer.registry import model_info

    check_output(out, [official])
    model = convert(official, model_name, img_size=img_size, T=T)
    save_checkpoint(model, out, source=str(official), imported_from=REPOS[model_info(model_name).family])
    n = sum(p.numel() for p in model.parameters())
    click.echo(f"wrote {out}: {model_name}, {model.num_classes} classes, img_size {model.img_size}, "
               f"{n / 1e6:.2f}M parameters")
