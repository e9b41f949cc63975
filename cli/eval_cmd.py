"""``sresformer eval``: accuracy of a checkpoint (or a NIR model) on a dataset's test split."""

from __future__ import annotations

import json

import click

from .options import batch_option, limit_option, spike_mask_option


def _parse_curve(ctx, param, value):
    """``"1,2,4"`` -> ``[1, 2, 4]``: positive step counts up to MAX_T, sorted, each once."""
    if value is None:
        return None
    from sresformer.limits import MAX_T

    try:
        steps = [int(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of step counts, e.g. 1,2,4,8") from None
    bad = [t for t in steps if not 1 <= t <= MAX_T]
    if bad:
        raise click.BadParameter(f"step count {bad[0]} is outside [1, {MAX_T}]")
    return sorted(set(steps))


def _mask_text(model) -> str | None:
    spec = getattr(model, "spike_mask_spec", None)
    return str(spec) if spec is not None else None


@click.command("eval")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--data", default=None, help="Dataset spec (default: the data the checkpoint was trained on, "
                                           "else digits).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout and nothing else.")
@click.option("--save-logits", type=click.Path(dir_okay=False), default=None,
              help="Write the [N, classes] float32 logits, in dataset order, to this .npy file.")
@click.option("--curve", callback=_parse_curve, default=None, metavar="T1,T2,...",
              help="SNN: accuracy of the output averaged over the first t steps, for each t in the list "
                   "(one run of max(t) steps).")
@limit_option("Evaluate only the first N test samples")
@batch_option(128)
@spike_mask_option("Evaluate with the deterministic random spike gate on attn (default), mlp or neuron-name globs "
                   "(replaces a checkpoint's own mask; 0 removes it).")
def eval_cmd(source, data, as_json, save_logits, curve, limit, batch_size, spike_mask):
    """Top-1 (and top-5 for more than 5 classes) accuracy of SOURCE (CKPT or MODEL.nir) on DATA. Under
    torchrun (torch.distributed, gloo) each process evaluates a share of whole batches and rank 0 prints
    the merged result (and writes --save-logits), equal to one process's."""
    from hw_sim import shard

    with shard.job() as (rank, _):
        _eval(source, data, as_json, save_logits, curve, limit, batch_size, spike_mask, rank)


def _eval(source, data, as_json, save_logits, curve, limit, batch_size, spike_mask, rank) -> None:
    import tempfile
    import time

    import torch

    from cli.common import load_model_source, masked_source
    from hw_sim import shard
    from sresformer.evaluate import evaluate, limited, open_eval_data
    from sresformer.evaluate import save_logits as write_logits
    from sresformer.fileio import check_output
    from sresformer.progress import enabled as progress_enabled

    if curve is not None and save_logits is not None:
        raise click.UsageError("--save-logits and --curve do not go together: --curve reports accuracies only")
    if save_logits is not None:
        check_output(save_logits, [source], option="--save-logits")
    with tempfile.TemporaryDirectory(prefix="sresformer-mask-") as tmp:
        model = load_model_source(masked_source(source, spike_mask, tmp))
    meta = getattr(model, "checkpoint_meta", {}) or {}
    spec = data or meta.get("data") or "digits"
    dataset, bundle = open_eval_data(model, spec)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if curve is not None:
        _curve(model.to(device), limited(dataset, limit), curve, spec, source, batch_size, device, as_json, rank)
        return
    start = time.perf_counter()
    parts = shard.run_block(lambda share: evaluate(model.to(device), share, batch_size=batch_size, device=device,
                                                   keep_logits=save_logits is not None,
                                                   progress=progress_enabled()),
                            limited(dataset, limit), batch_size)
    if rank != 0:
        return
    result = merged_eval(parts, time.perf_counter() - start)
    if save_logits is not None:
        write_logits(result.logits, save_logits)
    summary = {"accuracy": result.accuracy, "top5": result.top5, "correct": result.correct1,
               "samples": result.samples, "num_classes": result.num_classes, "data": spec,
               "model": getattr(model, "model_name", None), "source": str(source),
               "seconds": round(result.seconds, 3),
               "images_per_s": result.samples / result.seconds if result.seconds > 0 else 0.0,
               "logits": save_logits, "spike_mask": _mask_text(model)}
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"accuracy {result.accuracy:.2%} ({result.correct1}/{result.samples})")
    if result.top5 is not None:
        click.echo(f"top-5    {result.top5:.2%}")
    click.echo(f"samples  {result.samples} of {bundle.name} test, {summary['images_per_s']:.0f} img/s")
    if save_logits is not None:
        click.echo(f"logits   {save_logits} [{result.samples}, {result.num_classes}] float32")


def merged_eval(parts: list, seconds: float):
    """One :class:`EvalResult` from the ranks' (in batch order): counts added (integers, exact), logits
    concatenated in batch order; ``seconds`` the whole run's wall time."""
    import torch

    from sresformer.evaluate import EvalResult

    k = max(p.num_classes for p in parts)
    logits = None if parts[0].logits is None else torch.cat([p.logits for p in parts])
    return EvalResult(sum(p.correct1 for p in parts), sum(p.correct5 for p in parts), sum(p.samples for p in parts),
                      k, seconds, logits)


def _curve(model, dataset, steps, spec, source, batch_size, device, as_json, rank) -> None:
    import time

    from hw_sim import shard
    from sresformer.evaluate import CurveResult, accuracy_curve

    start = time.perf_counter()
    parts = shard.run_block(lambda share: accuracy_curve(model, share, steps, batch_size=batch_size, device=device),
                            dataset, batch_size)
    if rank != 0:
        return
    result = CurveResult(parts[0].steps, [sum(c) for c in zip(*(p.correct for p in parts), strict=True)],
                         sum(p.samples for p in parts), time.perf_counter() - start)
    acc = result.accuracies
    if as_json:
        click.echo(json.dumps({"curve": {str(t): a for t, a in acc.items()}, "samples": result.samples,
                               "data": spec, "model": getattr(model, "model_name", None), "source": str(source),
                               "seconds": round(result.seconds, 3)}))
        return
    for t, a in acc.items():
        click.echo(f"T {t:>4}  accuracy {a:.2%}")
    click.echo(f"samples {result.samples} of {spec} test, one run of {max(steps)} steps, {result.seconds:.1f} s")
