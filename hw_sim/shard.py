"""A dataset's batches shared among the processes of a ``torch.distributed`` job.

``torchrun --nproc_per_node=N $(which sresformer) simulate ...`` (or across machines with
torchrun's rendezvous) starts N processes with ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` set; :func:`init_from_env` joins them in a gloo process group (CPU, no GPU needed).

The samples are cut into the batches a single-process run makes (``batch_size`` consecutive
samples each, the last one shorter): a shard is a set of whole batches, so no float sum inside
a batch changes. The batches still to do go in rounds of ``world`` batches, rank ``r`` taking
the ``r``-th batch of each round (strided); after every round rank 0 gathers the round's
partials (:mod:`hw_sim.partials`), so it can append them to the results file in batch order
and add them up in batch order at the end: the totals are bit-identical to one process's.

One rank can fail alone (across machines: a file missing on one machine only). It leaves the group
(:func:`job`), prints its own error line, naming its rank (:func:`should_report`), and ends; the ranks
waiting for it in a collective (:func:`gather_to_root`, :func:`from_root`), or reaching one, then find
their connection to it closed and raise :class:`PeerLost`, a :class:`UserError`: one line each on their
own stderr, pointing at the other's, and exit 2, at once, not torch's traceback. A rank that hangs
without ending still holds the others until torch's timeout (30 minutes); one that ends before it has
joined the group (an option refused before the command opens the job) leaves the others waiting to
join, where SIGTERM does not reach Python: torchrun's agent kills them 30 s after its SIGTERM, without
a line of theirs.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import timedelta

import torch.distributed as dist

from sresformer.errors import UserError


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment (``RANK``, ``WORLD_SIZE``, ...),
    with the gloo backend; True if this call initialised it, False when there is no such job or it is
    already initialised."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or not dist.is_available():
        return False
    if dist.is_initialized():
        return False
    with _collective():   # joining waits for every rank: one that has ended already fails it
        dist.init_process_group("gloo")
    return True


def close() -> None:
    """Leave the process group (if any): torch warns about a group never destroyed."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def job():
    """Inside: the torchrun job's process group joined (:func:`init_from_env`), left on the way out;
    yields ``(rank, world size)``, ``(0, 1)`` outside torchrun."""
    joined = init_from_env()
    try:
        yield world()
    finally:
        if joined:
            close()


def world() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def batch_ranges(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` sample indices of every batch of a single-process run over ``n`` samples."""
    return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def block(n: int, batch_size: int) -> range:
    """The samples of ``n`` this rank runs when a command needs no record as it goes (``eval``, ``energy``):
    a contiguous run of whole batches of the single-process batching, rank ``r`` of ``W`` taking batches
    ``[r B / W, (r + 1) B / W)`` of ``B``. Rank order is then batch order: gathered in rank order and
    concatenated or added in that order, the shards make the single-process sums."""
    rank, size = world()
    nb = len(batch_ranges(n, batch_size))
    lo, hi = rank * nb // size, (rank + 1) * nb // size
    return range(min(lo * batch_size, n), min(hi * batch_size, n))


def run_block(run, data, batch_size: int):
    """``run(subset)`` on this rank's :func:`block` of the dataset ``data``; every rank's result in rank
    (= batch) order on rank 0, None on the others (``[result]`` without a group). The ranks must see the
    same number of samples (checked: :func:`same_on_all`)."""
    from torch.utils.data import Subset

    if world()[1] > 1:
        same_on_all(len(data), "the sample count")
    return gather_to_root(run(Subset(data, block(len(data), batch_size))))


def rounds(todo: list[int], size: int) -> list[list[int]]:
    """The batch indices ``todo`` (ascending) in rounds of ``size``: rank ``r`` runs ``round[r]``."""
    return [todo[i:i + size] for i in range(0, len(todo), size)]


class PeerLost(UserError):
    """A collective failed because another rank of the job has ended (or stopped answering) first."""


@contextmanager
def _collective():
    """Around every collective: the error it raises when a peer has gone becomes :class:`PeerLost`.

    gloo raises a plain ``RuntimeError`` for a pair whose other end closed ("Connection closed by
    peer", "Connection reset by peer") and ``torch.distributed.DistError`` (a ``RuntimeError`` too) for
    a timeout or a lost store; an object that cannot be pickled raises other types, so a
    ``RuntimeError`` here comes from the transport. The peer that left has said why on its own stderr,
    on its own machine: this rank's traceback would only bury that line. torch's first sentence stays
    in the message (and its exception is the ``__cause__``), for the rare case where the cause is
    something else."""
    try:
        yield
    except RuntimeError as e:
        raise PeerLost("another rank of the job ended (or stopped answering) before this one: its own error "
                       "line, or torchrun's report of its exit status, on its machine says why "
                       f"(torch.distributed: {_first_sentence(e)})") from e


def _first_sentence(e: BaseException) -> str:
    """torch's message without its source location (``[.../pair.cc:553] ``) and its advice after the first
    sentence."""
    text = " ".join(str(e).split())
    text = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", text)
    return re.split(r"\.\s+(?=[A-Z])", text, maxsplit=1)[0].rstrip(".") or type(e).__name__


def gather_to_root(obj):
    """Every rank's ``obj`` in rank order on rank 0 (None on the others); ``[obj]`` without a group.
    Raises :class:`PeerLost` when another rank has ended."""
    rank, size = world()
    if size == 1:
        return [obj]
    out = [None] * size if rank == 0 else None
    with _collective():
        dist.gather_object(obj, out, dst=0)
    return out


def from_root(obj):
    """Rank 0's ``obj`` on every rank (the others pass anything, e.g. None). Raises :class:`PeerLost` when
    another rank has ended."""
    if world()[1] == 1:
        return obj
    box = [obj]
    with _collective():
        dist.broadcast_object_list(box, src=0)
    return box[0]


def same_on_all(value, what: str) -> None:
    """Raise :class:`UserError` on every rank unless every rank has the same ``value`` (``what`` names it):
    across machines each one reads its own copy of the artifact and data, and rank 0's file and summary
    would otherwise mix two different runs."""
    got = gather_to_root(value)
    verdict = None
    if got is not None and any(v != got[0] for v in got):
        odd = [r for r, v in enumerate(got) if v != got[0]]
        verdict = f"the ranks disagree on {what} (ranks {odd} differ from rank 0): give every machine the same files"
    verdict = from_root(verdict)
    if verdict is not None:
        raise UserError(verdict)


#: how long a rank other than 0 waits for rank 0's verdict before saying its own error (seconds): the
#: ranks of one launch reach the same bad input within the time of their imports
PEER_WAIT_S = 10.0

#: how long a rank tries to reach the job's store (seconds; TCPStore tries twice): while the job lives the
#: store answers at once; once the torchrun agent that ran it has ended no one listens, and a rank whose
#: peer has gone (:class:`PeerLost`) would otherwise wait twice :data:`PEER_WAIT_S` to learn that
STORE_CONNECT_S = 2.0


def env_rank() -> tuple[int, int]:
    """``(RANK, WORLD_SIZE)`` from torchrun's environment, ``(0, 1)`` outside a job (no group needed)."""
    try:
        return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        return 0, 1


def should_report(message: str) -> bool:
    """Whether this rank prints the error ``message`` (every rank of a job exits 2, one line in all):
    rank 0 always does, and records it in the job's store (torchrun's TCP store at ``MASTER_ADDR`` /
    ``MASTER_PORT``, torch.distributed's own key-value store); another rank stays silent when rank 0
    failed with the same message, and reports its own (naming its rank) when rank 0 failed otherwise,
    or not within :data:`PEER_WAIT_S` (a file missing on one machine only). True outside a job or when
    the store cannot be reached (within twice :data:`STORE_CONNECT_S`: torchrun's agent has ended, e.g.
    after the peer a :class:`PeerLost` names): a line too many rather than none."""
    rank, size = env_rank()
    if size <= 1 or "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        return True
    try:
        store = dist.PrefixStore("sresformer", dist.TCPStore(
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
            timeout=timedelta(seconds=min(STORE_CONNECT_S, PEER_WAIT_S))))
        if rank == 0:
            store.set("rank0-error", message)
            return True
        store.wait(["rank0-error"], timedelta(seconds=PEER_WAIT_S))
        return store.get("rank0-error").decode() != message
    except (RuntimeError, ValueError, OSError):   # no store, or rank 0 never failed: say it here
        return True
