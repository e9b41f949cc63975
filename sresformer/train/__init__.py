"""Training: ``train(model, out, data, ...)`` writes a run directory with checkpoints and metrics.

Recipe (see :mod:`.config` for the per-model / per-dataset defaults): AdamW with the
official weight-decay exemptions (:mod:`.optim`), linear warm-up then cosine decay set
per optimizer step (:mod:`.schedule`), label smoothing 0.1, bf16 autocast on CUDA.
Resume restores model, optimizer, scheduler, epoch, best accuracy and every RNG
(:mod:`.state`) from ``RUN_DIR/last.ckpt`` (:mod:`.run_dir`). torchrun launches
DistributedDataParallel (:mod:`.distributed`).
"""

from .config import RECIPES, TrainConfig, recipe_for, resolve_config
from .runner import prepare, run_training, train
from .schedule import WarmupCosine, warmup_cosine_lr

__all__ = ["RECIPES", "TrainConfig", "WarmupCosine", "prepare", "recipe_for", "resolve_config",
           "run_training", "train", "warmup_cosine_lr"]
