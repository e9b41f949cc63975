"""hw_sim.shard: batches as a single process cuts them, ranks that disagree on their inputs refused, and a
collective whose peer has gone a UserError."""

import os
import time

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from hw_sim import shard
from sresformer.errors import UserError


def test_batches_and_rounds_cover_every_sample_once():
    ranges = shard.batch_ranges(20, 3)
    assert ranges == [(0, 3), (3, 6), (6, 9), (9, 12), (12, 15), (15, 18), (18, 20)]   # by hand
    todo = [1, 2, 4, 5, 6]   # 0 and 3 done already
    assert shard.rounds(todo, 2) == [[1, 2], [4, 5], [6]]
    assert shard.world() == (0, 1) and shard.gather_to_root("x") == ["x"] and shard.from_root(5) == 5


def _disagree(rank: int, tmp_path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdv'}", rank=rank, world_size=2)
    try:
        shard.same_on_all("same", "a value")   # agreement passes silently
        try:
            shard.same_on_all(f"sha-of-rank-{rank}", "the artifact")
            verdict = "passed"
        except Exception as e:   # noqa: BLE001 - the message is what the test checks
            verdict = f"{type(e).__name__}: {e}"
        (tmp_path / f"rank{rank}").write_text(verdict)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ranks_with_different_artifacts_all_stop(tmp_path):
    mp.spawn(_disagree, args=(tmp_path,), nprocs=2)
    for rank in (0, 1):   # every rank stops with the same line: none waits for the other forever
        assert (tmp_path / f"rank{rank}").read_text() == (
            "UserError: the ranks disagree on the artifact (ranks [1] differ from rank 0): give every machine "
            "the same files")


def _peer_leaves(rank: int, tmp_path) -> None:
    from datetime import timedelta

    # torch's default timeout is 30 minutes; a minute here, so that a lost peer taken for a slow one fails
    # the time check below instead of hanging the test
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdv'}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    shard.same_on_all("same", "a value")   # both ranks fully joined
    if rank == 1:
        os._exit(0)                        # gone without a word, as a machine that lost its process
    lines = []
    for collective in (lambda: shard.gather_to_root("x"), lambda: shard.from_root("y")):
        start = time.monotonic()
        try:
            collective()
            lines.append("passed")
        except shard.PeerLost as e:
            lines.append(f"{time.monotonic() - start < 20} {type(e.__cause__).__name__} {e}")
    (tmp_path / "rank0").write_text("\n".join(lines))
    dist.destroy_process_group()


@pytest.mark.slow
def test_a_peer_gone_is_one_user_error_not_a_torch_traceback(tmp_path):
    """A real 2-process gloo group whose rank 1 ends before a collective: rank 0's gather and broadcast each
    raise :class:`hw_sim.shard.PeerLost` (a UserError: the CLI's one line) at once, torch's error its cause."""
    mp.spawn(_peer_leaves, args=(tmp_path,), nprocs=2)
    lines = (tmp_path / "rank0").read_text().splitlines()
    assert len(lines) == 2 and issubclass(shard.PeerLost, UserError)   # each message one line
    for line in lines:
        fast, cause, message = line.split(" ", 2)
        assert fast == "True" and cause in ("RuntimeError", "DistError", "DistNetworkError", "DistBackendError")
        assert message.startswith("another rank of the job ended (or stopped answering) before this one: its own "
                                  "error line, or torchrun's report of its exit status, on its machine says why "
                                  "(torch.distributed: "), message
