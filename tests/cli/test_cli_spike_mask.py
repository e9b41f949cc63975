"""``--spike-mask`` on the command line: one-line errors, stored masks, and the ``energy --sweep-mask`` curve."""

import json

import pytest

import sresformer
from sresformer.masking import MaskSpec
from testutil import export_small, lively_nano_checkpoint, one_line_error
from testutil import run_cli_here as run

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return lively_nano_checkpoint(tmp_path_factory.mktemp("cli-mask"), seed=0)


def test_bad_specs_are_one_line(ckpt, tmp_path):
    one_line_error(run("eval", str(ckpt), "--limit", "4", "--spike-mask", "1.5"), "RATIO")
    one_line_error(run("eval", str(ckpt), "--limit", "4", "--spike-mask", "0.5:nope*"), "selects no neuron")
    one_line_error(run("export", str(ckpt), "--target", "nir", "--out", str(tmp_path / "x.nir"),
                       "--spike-mask", "x"), "number")
    assert not (tmp_path / "x.nir").exists()
    one_line_error(run("energy", str(ckpt), "--sweep-mask", "0,abc"), "not a number")
    one_line_error(run("energy", str(tmp_path / "a.loihi"), "--sweep-mask", "0,0.5"), "needs a checkpoint")


def test_export_eval_and_simulate_with_a_mask(ckpt, tmp_path):
    nir_path = tmp_path / "m.nir"
    r = run("export", str(ckpt), "--target", "nir", "--out", str(nir_path), "--spike-mask", "0.5:attn,mlp", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    plain = json.loads(run("eval", str(ckpt), "--limit", "32", "--json").stdout)
    masked = json.loads(run("eval", str(ckpt), "--limit", "32", "--json", "--spike-mask", "0.5:attn,mlp").stdout)
    via_nir = json.loads(run("eval", str(nir_path), "--limit", "32", "--json").stdout)
    assert masked["spike_mask"] == "0.5:attn,mlp" and plain["spike_mask"] is None
    assert via_nir["correct"] == masked["correct"]
    art = export_small(ckpt, tmp_path / "m.loihi")
    one_line_error(run("simulate", str(art), "--limit", "2", "--spike-mask", "0.5"), "fixed at export")
    one_line_error(run("simulate", str(nir_path), "--limit", "2", "--spike-mask", "0.5"), "already carries")
    r = run("simulate", str(tmp_path / "plain.nir"), "--limit", "2", "--spike-mask", "0.5")
    one_line_error(r, "does not exist")
    # an unmasked NIR file gets its gates at simulate time; the simulator still agrees bit for bit
    assert run("export", str(ckpt), "--target", "nir", "--out", str(tmp_path / "plain.nir")).returncode == 0
    r = run("simulate", str(tmp_path / "plain.nir"), "--limit", "4", "--spike-mask", "0.5:attn,mlp", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    sim = json.loads(r.stdout)
    assert sim["agreement"] == 1.0 and sim["spike_mask"] == "0.5:attn,mlp"


def test_sweep_json_energy_falls_with_the_ratio(ckpt, tmp_path):
    r = run("energy", str(ckpt), "--sweep-mask", "0,0.25,0.5,0.75", "--mask-modules", "attn,mlp", "--limit", "16",
            "--json", "--plot", str(tmp_path / "curve.png"))
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    rows = rep["rows"]
    assert [row["ratio"] for row in rows] == [0, 0.25, 0.5, 0.75] and rep["modules"] == ["attn", "mlp"]
    energies = [row["energy_j"] for row in rows]
    assert all(a > b for a, b in zip(energies, energies[1:], strict=False)), energies
    assert (tmp_path / "curve.png").stat().st_size > 0
    # ratio 0 is the unmasked model: the same total as the plain energy command on the same images
    plain = json.loads(run("energy", str(ckpt), "--limit", "16", "--json").stdout)
    assert rows[0]["energy_j"] == pytest.approx(plain["total"]["energy_j"])
    assert 0 <= rows[-1]["accuracy"] <= 1 and rows[0]["samples"] == 16


def test_train_stores_the_mask(tmp_path):
    out = tmp_path / "run"
    r = run("train", "--model", "spikingresformer_nano", "--data", "digits", "--out", str(out), "--epochs", "1",
            "--batch-size", "16", "--limit-train", "32", "--limit-test", "16", "--spike-mask", "0.25:attn")
    assert r.returncode == 0, r.stderr[-2000:]
    ck = sresformer.read_checkpoint(out / "last.ckpt")
    assert MaskSpec.from_dict(ck["spike_mask"]) == MaskSpec(0.25, ("attn",))
    model = sresformer.load_checkpoint(out / "last.ckpt")
    assert str(model.spike_mask_spec) == "0.25:attn"
    one_line_error(run("train", "--model", "spikingresformer_nano", "--out", str(tmp_path / "r2"),
                       "--spike-mask", "0.25:attn,"), "empty item")
