"""``sresformer energy --compare``: every row equals the single-model reports it summarises."""

import json

import pytest

import sresformer
from sresformer.data import open_dataset
from testutil import lively_nano_artifact, warm_up
from testutil import run_cli_here as run


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A warmed-up nano checkpoint and a lively nano artifact (a model of its own)."""
    import torch

    tmp = tmp_path_factory.mktemp("cmp")
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(32)])
    ckpt = tmp / "nano.ckpt"
    sresformer.save_checkpoint(warm_up(sresformer.create_model("spikingresformer_nano"), x, steps=3), ckpt)
    return ckpt, lively_nano_artifact(tmp)


def test_compare_rows_equal_the_single_reports(sources, tmp_path):
    ckpt, artifact = sources
    r = run("energy", "--compare", str(ckpt), str(artifact), "--limit", "4", "--json",
            "--plot", str(tmp_path / "cmp.png"))
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert (tmp_path / "cmp.png").stat().st_size > 0
    row_ckpt, row_art = rep["rows"]
    # the float side equals `sresformer energy CKPT` under each convention
    for conv in ("paper", "standard"):
        single = json.loads(run("energy", str(ckpt), "--limit", "4", "--convention", conv, "--json").stdout)
        assert row_ckpt[f"energy_{conv}_j"] == pytest.approx(single["total"]["energy_j"])
        if conv == "standard":
            assert row_ckpt["ac"] == pytest.approx(single["total"]["ac"])
    model = sresformer.load_checkpoint(ckpt)
    assert row_ckpt["params"] == sum(p.numel() for p in model.parameters())
    # the chip side of both rows equals `sresformer simulate`
    for row, src in ((row_art, artifact),):
        sim = json.loads(run("simulate", str(src), "--limit", "4", "--json").stdout)
        for key_row, key_sim in (("chip_energy_j", "energy_j"), ("latency_s", "latency_s"), ("cores", "cores"),
                                 ("agreement", "agreement"), ("accuracy_int", "accuracy")):
            assert row[key_row] == pytest.approx(sim[key_sim]), key_row
    assert row_ckpt["agreement"] == 1.0 and row_ckpt["cores"] > 0 and row_ckpt["latency_s"] > 0
    assert row_art["params"] is None   # an artifact has no float model: shown as '-', never 0
    art_paper = json.loads(run("energy", str(artifact), "--limit", "4", "--convention", "paper", "--json").stdout)
    assert row_art["energy_paper_j"] == pytest.approx(art_paper["total"]["energy_j"])
    assert row_art["counts"].startswith("integer") and row_ckpt["counts"] == "float model"
    # every report names the chip and the attention lowering that ran (nano's DSSA on loihi2: product neurons)
    assert (row_ckpt["chip"], row_ckpt["attention"]) == ("loihi2", "prodneuron")
    assert (sim["chip"], sim["attention"]) == ("loihi2", "prodneuron")
    assert (art_paper["chip"], art_paper["attention"]) == ("loihi2", "prodneuron")
    text = run("energy", str(artifact), "--limit", "2").stdout
    assert "chip `loihi2`" in text and "prodneuron" in text


@pytest.mark.slow
def test_compare_one_model_on_silicon_and_on_the_hypothetical_core(sources):
    ckpt, _ = sources
    r = run("energy", "--compare", str(ckpt), "--limit", "2", "--chip", "loihi2", "--chip", "loihi2-opmem", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    silicon, opmem = json.loads(r.stdout)["rows"]
    assert (silicon["chip"], silicon["attention"]) == ("loihi2", "prodneuron")
    assert (opmem["chip"], opmem["attention"]) == ("loihi2-opmem", "operand-memory")
    assert silicon["energy_standard_j"] == opmem["energy_standard_j"]   # one float side, measured once
    assert silicon["agreement"] == opmem["agreement"] == 1.0
    # the product compartments cost cores that a core holding the operand does not need
    assert silicon["cores"] > opmem["cores"]
    md = run("energy", "--compare", str(ckpt), "--limit", "2", "--chip", "loihi2", "--chip", "loihi2-opmem").stdout
    assert "on loihi2-opmem" in md and "HYPOTHETICAL" in md


def test_compare_markdown_and_model_names():
    r = run("energy", "--compare", "spikingresformer_nano", "spikformer_nano", "--data", "synthetic",
            "--limit", "2", "--no-chip")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("| spik")]
    assert len(lines) == 2 and all("| - |" in ln for ln in lines)   # synthetic labels: no accuracy


def test_compare_errors_are_one_line(sources, tmp_path):
    ckpt, _ = sources
    for args in (("--compare", "no_such_model"), ("--compare", str(ckpt), "--sweep-mask", "0,0.5"),
                 (str(ckpt), str(ckpt)), (str(ckpt), "--no-chip"), (str(ckpt), "--chip", "loihi2"),
                 ("--compare", str(ckpt), "--chip", "no_such_chip")):
        r = run("energy", *args, "--limit", "2")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_row_labels_tell_runs_and_masks_apart():
    from hw_sim.compare_report import label

    plain = {"source": "runs/a/best.ckpt", "model": "spikingresformer_nano", "spike_mask": None}
    masked = {"source": "runs/b/best.ckpt", "model": "spikingresformer_nano", "spike_mask": "0.25:attn"}
    zoo = {"source": "spikformer_nano", "model": "spikformer_nano"}
    assert label(plain) == "spikingresformer_nano (a/best.ckpt)"
    assert label(masked) == "spikingresformer_nano + spike mask 0.25:attn (b/best.ckpt)"
    assert label(zoo) == "spikformer_nano"
    assert label({"source": "m.loihi", "model": None}) == "m.loihi"
