"""``sresformer train``: train a zoo model on a dataset into a run directory.

Writes ``RUN_DIR/last.ckpt`` every epoch, ``RUN_DIR/best.ckpt`` on the best test
accuracy and ``RUN_DIR/metrics.jsonl`` (one JSON object per epoch). Options left out
take the per-model / per-dataset recipe of ``sresformer.train.config.RECIPES``.
Distributed: ``torchrun --nproc_per_node=N $(which sresformer) train ...``.

Hidden options for tests and smoke runs (not in ``--help``):

- ``--limit-train N`` / ``--limit-test N``: use only the first N samples of each split;
- ``--stop-after N``: end after N epochs of this invocation, as if interrupted at an
  epoch boundary (continue with ``--resume``);
- ``--warmup-epochs``, ``--label-smoothing``: recipe values not usually changed.
"""

from __future__ import annotations

import click

from .options import IMG, MAX_WORKERS, POSITIVE, SEED, Finite, batch_option, spike_mask_option, t_option

# the digits and official recipes of sresformer.train.config.RECIPES, said where --help is read
RECIPE = "default: the recipe for the model and data; digits: {digits}, official CIFAR/ImageNet: {official}"


@click.command()
@click.option("--model", "model_name", required=True, help="Registry name, e.g. spikingresformer_nano.")
@click.option("--data", default=None, help="Dataset: digits (default), synthetic, cifar10:PATH, cifar100:PATH, "
                                           "folder:PATH, frames:PATH.npz.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run directory to write (locked while the run lives).")
@click.option("--epochs", type=click.IntRange(1, 100_000), default=None,
              help="Epochs to train (" + RECIPE.format(digits="10", official="600 / 320") + ").")
@batch_option(None, "Samples per step and process (" + RECIPE.format(digits="64", official="128 / 32") + ")")
@click.option("--lr", type=Finite(0, 10, min_open=True), default=None,
              help="Peak learning rate per step after warm-up (" + RECIPE.format(digits="2e-3", official="5e-4 / 1e-3")
                   + ").")
@click.option("--weight-decay", type=Finite(0, 1), default=None,
              help="AdamW weight decay, not on BN, biases, PLIF w (default 0.01, the official recipe's).")
@t_option("Time steps (default: the model's; frames: the file's)")
@click.option("--seed", type=SEED, default=None, help="Seed of every random generator (default 0).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last complete epoch.")
@click.option("--workers", type=click.IntRange(0, MAX_WORKERS), default=None,
              help="DataLoader worker processes (default 0: load in the main process).")
@click.option("--img-size", type=IMG, default=None, help="Square input side in pixels (default: the dataset's).")
@spike_mask_option("Random spike masking (MST): drop each spike entering attn (default), mlp or neuron-name globs "
                   "with probability RATIO while training; stored in the checkpoints.")
@click.option("--warmup-epochs", type=Finite(0, 100_000), default=None, hidden=True)
@click.option("--label-smoothing", type=Finite(0, 1, max_open=True), default=None, hidden=True)
@click.option("--limit-train", type=POSITIVE, default=None, hidden=True)
@click.option("--limit-test", type=POSITIVE, default=None, hidden=True)
@click.option("--stop-after", type=POSITIVE, default=None, hidden=True)
def train(model_name, data, out, resume, stop_after, **options):
    """Train MODEL on DATA; checkpoints and metrics go to --out (resumable with --resume)."""
    from sresformer.fileio import check_output
    from sresformer.train import train as run

    check_output(out, option="--out", directory=True)
    summary = run(model_name, out, data, resume=resume, stop_after=stop_after, **options)
    if summary["rank"] != 0:
        return
    click.echo(f"{out}: epoch {summary['epochs_completed']}/{summary['epochs']}, test accuracy "
               f"{summary['final_accuracy']:.2%}, best {summary['best_accuracy']:.2%} at epoch "
               f"{summary['best_epoch']}, {summary['seconds']:.1f} s")
