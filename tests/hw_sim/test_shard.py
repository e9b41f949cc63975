"""hw_sim.shard: batches as a single process cuts them, and ranks that disagree on their inputs refused."""

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from hw_sim import shard


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
