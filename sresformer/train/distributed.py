"""torchrun / DistributedDataParallel helpers: one process per device, rank 0 writes.

``torchrun --nproc_per_node=N $(which sresformer) train ...`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables; :func:`init_distributed`
reads them and joins the process group (``nccl`` when CUDA is available, ``gloo`` on
CPU). Without them everything runs in one process and every collective is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    """Where this process runs: its rank among ``world_size`` and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        """True inside a process group of more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and shows progress."""
        return self.rank == 0

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over all ranks (a copy on this process's device, returned on ``t``'s device)."""
        if not self.distributed:
            return t
        buf = t.detach().to(self.device).clone()
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        return buf.to(t.device)

    def all_gather_object(self, obj) -> list:
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` without a group)."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        """Wait for every rank (no-op in one process)."""
        if self.distributed:
            dist.barrier()


def env_rank() -> int:
    """``RANK`` as torchrun sets it (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed() -> DistContext:
    """Join the process group described by torchrun's environment and pick this rank's device.

    CUDA (``cuda:LOCAL_RANK``) when available, else the CPU. In a CPU process group each
    rank keeps ``cores // local ranks`` intra-op threads (at least 1), so N processes do
    not oversubscribe the machine.
    """
    world = env_world_size()
    rank = env_rank()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        if not cuda:
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
        dist.init_process_group(backend="nccl" if cuda else "gloo", rank=rank, world_size=world,
                                device_id=device if cuda else None)
    return DistContext(rank=rank, world_size=world, local_rank=local, device=device)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (no-op in one process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``model`` on its device, wrapped in DistributedDataParallel inside a process group.

    DDP broadcasts buffers from rank 0 before every forward, so the DSSA firing-rate
    buffers (updated in place in training) stay equal on all ranks.
    """
    model = model.to(ctx.device)
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
