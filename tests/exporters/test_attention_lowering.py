"""Which attention a chip gets: ``prodmm`` on loihi2, ``dsmm`` on loihi2-opmem, a refusal on loihi1.

The products of a DSSA model are lowered to what the chip has (``hw_sim/prodneuron.py``): product
neurons (Lava's ProdNeuron) on Loihi 2, a dynamic-operand core on the hypothetical loihi2-opmem;
Loihi 1 has neither and the export is refused in one line. Both lowerings compute the same
integers (the logits agree), and the artifact's report says which one ran.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from hw_sim.artifact import read_artifact
from hw_sim.executor import Executor
from testutil import export_small, lively_nano_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return lively_nano_checkpoint(tmp_path_factory.mktemp("attn"))


@pytest.fixture(scope="module")
def artifacts(ckpt):
    return {chip: read_artifact(export_small(ckpt, ckpt.parent / f"{chip}.loihi", chip=chip))
            for chip in ("loihi2", "loihi2-opmem")}


def test_loihi2_builds_the_products_from_product_neurons(artifacts):
    pg, mapping, report = artifacts["loihi2"]
    kinds = [p.kind for p in pg]
    assert "prodmm" in kinds and "dsmm" not in kinds
    # DSSA's products are each read by one attention neuron: their terms sum in its dendrite
    assert not any(p.name.endswith(".terms") for p in pg)
    assert report["mapping"]["attention"] == "prodneuron" == mapping.attention
    for p in pg:
        if p.kind == "prodmm":   # the product compartments are a group of their own, h*r*k*c of them
            # k: S's d channels per head (y1T@s) or A's N token rows per head (y2@a)
            k = pg.processes[p.operands[1]].out_shape[0] // p.attrs.heads
            assert mapping.groups[p.name].size == int(torch.tensor(p.out_shape).prod()) * k


def test_loihi2_opmem_holds_the_operand_in_the_core(artifacts):
    pg, mapping, report = artifacts["loihi2-opmem"]
    kinds = [p.kind for p in pg]
    assert "dsmm" in kinds and "prodmm" not in kinds
    assert report["mapping"]["attention"] == "operand-memory" == mapping.attention
    assert "HYPOTHETICAL" in mapping.chip["description"]


def test_both_lowerings_compute_the_same_integers(artifacts):
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a, b = (Executor(artifacts[c][0]).run(x).logits for c in ("loihi2", "loihi2-opmem"))
    assert torch.equal(a, b) and float(a.abs().sum()) > 0


def test_loihi1_refuses_dssa_in_one_line(ckpt, tmp_path):
    out = tmp_path / "l1.loihi"
    r = CliRunner().invoke(cli, ["export", str(ckpt), "--target", "loihi", "--chip", "loihi1", "--out", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 2 and r.stdout == "" and not out.exists()
    assert len(r.stderr.strip().splitlines()) == 1
    assert "loihi1 has no product neurons or graded spikes: DSSA's products cannot run on it" in r.stderr
    assert "use loihi2" in r.stderr


def test_export_json_says_which_attention_ran(ckpt, tmp_path):
    r = CliRunner().invoke(cli, ["export", str(ckpt), "--target", "loihi", "--chip", "loihi2-opmem", "--out",
                                 str(tmp_path / "o.loihi"), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["attention"] == "operand-memory"
