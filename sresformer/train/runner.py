"""A training run from options to run directory: data, model, optimizer, epochs, checkpoints, resume.

Each epoch trains on the (shuffled, augmented) train split, then evaluates on the test
split in eval mode while :class:`~sresformer.firing.FiringRecorder` measures the
per-layer firing rates that every checkpoint stores. Under torchrun each rank trains on
its DistributedSampler shard and evaluates on every ``world_size``-th test sample; the
counts are summed over ranks, and only rank 0 writes files and shows progress.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

from ..errors import UserError
from ..evaluate import evaluate, limited
from ..fileio import directory_lock
from ..firing import FiringRecorder
from ..registry import create_model, model_info
from . import distributed as dist_util
from .config import TrainConfig, resolve_config, resume_config
from .loop import train_one_epoch
from .optim import build_optimizer
from .progress import log_line, progress_enabled
from .run_dir import RunDir
from .schedule import WarmupCosine
from .state import capture_rng, restore_rng, seed_everything


@dataclass
class Prepared:
    """Everything built before the process group starts (so bad input fails early on every rank)."""

    config: TrainConfig
    bundle: object
    model: nn.Module
    resume: dict | None


def prepare(model: str, out: str, data: str | None = None, *, resume: bool = False, **options) -> Prepared:
    """Validate the options, open the data, build (and on resume, load) the model.

    Raises ``UserError`` subclasses for an unknown model or dataset, a missing path, a
    run directory that already holds a run (without ``resume``), or a ``last.ckpt`` that
    is corrupt or belongs to another model.
    """
    from ..data import open_dataset

    info = model_info(model)
    run = RunDir(out)
    ckpt = None
    if resume and run.has_run():
        ckpt = run.read_last()
        config = resume_config(ckpt["train_state"]["config"], model, out, data, **options)
    else:
        if run.has_run():
            raise UserError(f"{out} already holds a run ({run.last.name}); pass --resume to continue it "
                            f"or choose another --out")
        if resume and dist_util.env_rank() == 0:
            log_line(f"sresformer: {run.last} does not exist yet: nothing to resume, starting at epoch 1")
        config = resolve_config(model, out, data, **options)

    bundle = open_dataset(config.data, img_size=config.img_size, in_channels=info.in_channels, T=config.T,
                          augment=True, seed=config.seed)
    C, H, W = bundle.input_shape[-3:]
    if H != W:
        raise UserError(f"{bundle.name} samples are {H}x{W}; SpikingResformer needs square input: pass --img-size")
    T = bundle.input_shape[0] if bundle.is_sequence else (config.T or info.T)
    config = replace(config, T=int(T), img_size=int(H))

    seed_everything(config.seed + dist_util.env_rank())
    try:
        net = create_model(model, num_classes=bundle.num_classes, img_size=config.img_size, T=config.T,
                           in_channels=C)
    except ValueError as e:  # e.g. a feature map not divisible by a DSSA patch size
        raise UserError(f"cannot build {model} for {bundle.name} at img_size {config.img_size}: {e}") from None
    if config.spike_mask is not None:   # MST: train with the random spike mask (stored in every checkpoint)
        from ..masking import apply_spike_mask, parse_spec
        apply_spike_mask(net, parse_spec(config.spike_mask))
    if ckpt is not None:
        try:
            net.load_state_dict(ckpt["state_dict"])
        except RuntimeError as e:
            raise UserError(f"{run.last} does not fit {model} on {config.data} (img_size {config.img_size}, "
                            f"{bundle.num_classes} classes): {str(e).strip().splitlines()[-1].strip()}") from None
    run.check_writable()  # last: bad input leaves no empty run directory behind
    return Prepared(config, bundle, net, ckpt)


def _loaders(config: TrainConfig, bundle, ctx: dist_util.DistContext, generator: torch.Generator):
    train_set = limited(bundle.train, config.limit_train)
    test_set = limited(bundle.test, config.limit_test)
    # evaluation shards are disjoint and unpadded, so summed counts are exact
    test_shard = Subset(test_set, range(ctx.rank, len(test_set), ctx.world_size))
    if ctx.distributed:
        sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                     seed=config.seed)
    else:
        sampler = RandomSampler(train_set, generator=generator)
    pin = ctx.device.type == "cuda"
    train_loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler,
                              num_workers=config.workers, generator=generator, pin_memory=pin)
    test_loader = DataLoader(test_shard, batch_size=max(config.batch_size, 128), shuffle=False,
                             num_workers=config.workers, pin_memory=pin)
    return train_loader, test_loader


def _epoch_line(rec: dict, epochs: int, best: float) -> str:
    return (f"epoch {rec['epoch']}/{epochs}  loss {rec['train_loss']:.4f}  train {rec['train_acc']:.2%}  "
            f"test {rec['test_acc']:.2%} (best {best:.2%})  {rec['images_per_s']:.0f} img/s  "
            f"{rec['seconds']:.1f} s  lr {rec['lr']:.2e}")


def run_training(prep: Prepared, *, stop_after: int | None = None, progress: bool | None = None) -> dict:
    """Train ``prep``'s model for the remaining epochs; return a summary dict.

    ``stop_after``: end this process after that many epochs (the run stays resumable;
    tests use it to interrupt a run at an epoch boundary). ``progress``: force the tqdm
    bar on or off (default: :func:`progress_enabled`).
    """
    config, bundle, run = prep.config, prep.bundle, RunDir(prep.config.out)
    ctx = dist_util.init_distributed()
    try:
        raw = prep.model.to(ctx.device)
        model = dist_util.wrap_model(raw, ctx)
        generator = torch.Generator().manual_seed(config.seed)
        train_loader, test_loader = _loaders(config, bundle, ctx, generator)
        steps = len(train_loader)
        optimizer = build_optimizer(raw, config.lr, config.weight_decay)
        scheduler = WarmupCosine(optimizer, base_lr=config.lr, total_steps=config.epochs * steps,
                                 warmup_steps=round(config.warmup_epochs * steps), warmup_lr=config.warmup_lr,
                                 min_lr=config.min_lr)
        criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        start, best, best_epoch, history = 0, -1.0, 0, []
        if prep.resume is not None:
            state = prep.resume["train_state"]
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start, best, best_epoch = int(state["epoch"]), float(state["best_accuracy"]), int(state["best_epoch"])
            history = [dict(r) for r in state["metrics"]][:start]
            rngs = state["rng"]
            restore_rng(rngs[min(ctx.rank, len(rngs) - 1)], generator)
        if ctx.is_main:
            run.remove_stale_temporaries()
            run.write_metrics(history)  # drops a line written after the last complete epoch
        show = progress_enabled(ctx.is_main) if progress is None else (progress and ctx.is_main)
        wall = time.perf_counter()
        done = 0
        for epoch in range(start, config.epochs):
            if isinstance(train_loader.sampler, DistributedSampler):
                train_loader.sampler.set_epoch(epoch)
            t0 = time.perf_counter()
            stats = train_one_epoch(model, train_loader, optimizer, scheduler, criterion, device=ctx.device,
                                    progress=show, desc=f"epoch {epoch + 1}/{config.epochs}")
            with FiringRecorder(raw) as recorder:
                result = evaluate(raw, test_loader, device=ctx.device)
            sums = ctx.all_reduce_sum(torch.tensor(
                [stats.loss_sum, stats.correct, stats.samples, result.correct1, result.correct5, result.samples],
                dtype=torch.float64))
            recorder.load_counts(ctx.all_reduce_sum(recorder.counts()))
            loss_sum, correct, samples, c1, c5, n_test = sums.tolist()
            acc = c1 / n_test if n_test else 0.0
            record = {"epoch": epoch + 1, "train_loss": loss_sum / max(samples, 1),
                      "train_acc": correct / max(samples, 1), "test_acc": acc,
                      "images_per_s": samples / stats.seconds if stats.seconds > 0 else 0.0,
                      "seconds": time.perf_counter() - t0, "world_size": ctx.world_size, "lr": stats.lr}
            history.append(record)
            improved = acc > best
            if improved:
                best, best_epoch = acc, epoch + 1
            meta = {"accuracy": acc, "top5": c5 / n_test if n_test and result.num_classes > 5 else None,
                    "test_samples": int(n_test), "epoch": epoch + 1, "data": config.data, "data_name": bundle.name,
                    "T": config.T, "img_size": config.img_size, "num_classes": bundle.num_classes,
                    "train_args": config.to_dict(), "firing_rates": recorder.rates(),
                    "world_size": ctx.world_size, "best_accuracy": best, "best_epoch": best_epoch}
            rngs = ctx.all_gather_object(capture_rng(generator))
            if ctx.is_main:
                train_state = {"epoch": epoch + 1, "best_accuracy": best, "best_epoch": best_epoch,
                               "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                               "rng": rngs, "metrics": history, "config": config.to_dict(),
                               "world_size": ctx.world_size}
                run.write_epoch(raw, meta, train_state, history, improved)
                log_line(_epoch_line(record, config.epochs, best))
            done += 1
            if stop_after is not None and done >= stop_after:
                break
        ctx.barrier()
        final = history[-1]["test_acc"] if history else None
        return {"run_dir": str(run.path), "epochs_completed": len(history), "epochs": config.epochs,
                "final_accuracy": final, "best_accuracy": best if history else None, "best_epoch": best_epoch,
                "seconds": time.perf_counter() - wall, "world_size": ctx.world_size, "rank": ctx.rank}
    finally:
        dist_util.shutdown(ctx)


def train(model: str, out: str, data: str | None = None, *, resume: bool = False, stop_after: int | None = None,
          progress: bool | None = None, **options) -> dict:
    """Train registered ``model`` on ``data`` (default ``digits``) into run directory ``out``.

    ``options`` are :class:`~sresformer.train.config.TrainConfig` fields (epochs,
    batch_size, lr, weight_decay, T, img_size, seed, workers, limit_train, limit_test,
    ...); None means the recipe default. ``resume=True`` continues the run in ``out``
    from its last complete epoch. Returns the summary of :func:`run_training`.
    """
    # rank 0 writes the run directory: it holds the lock from the first look at it to the last write
    lock = directory_lock(out) if dist_util.env_rank() == 0 else contextlib.nullcontext()
    with lock:
        return run_training(prepare(model, out, data, resume=resume, **options), stop_after=stop_after,
                            progress=progress)
