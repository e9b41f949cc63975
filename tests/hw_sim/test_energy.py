"""Energy conventions on hand-made counts, and the report renderers."""

import csv
import io

import pytest

from hw_sim.energy import layer_role, price
from hw_sim.report import plot, to_csv, to_markdown

LAYERS = [
    {"name": "prologue.0", "dense_macs": 1000, "ac": 0, "mac": 1000, "firing_rate": 1.0},
    {"name": "layers.0.0.W", "dense_macs": 4000, "ac": 300, "mac": 0, "firing_rate": 0.1},
    {"name": "layers.0.0.matmul1", "dense_macs": 800, "ac": 50, "mac": 0, "firing_rate": 0.2},
    {"name": "classifier", "dense_macs": 100, "ac": 0, "mac": 100, "firing_rate": 1.0},
]


def test_standard_convention_hand_computed():
    r = price(LAYERS, "standard")
    # 0.9 pJ x (300 + 50) ACs + 4.6 pJ x (1000 + 100) MACs
    assert r["total"]["energy_j"] == pytest.approx((0.9 * 350 + 4.6 * 1100) * 1e-12)
    assert r["total"]["sops"] == 1450


def test_paper_convention_skips_stem_and_classifier():
    r = price(LAYERS, "paper")
    assert r["total"]["energy_j"] == pytest.approx(0.9 * 350 * 1e-12)
    assert r["total"]["sops"] == 350


def test_totals_are_sums_and_loihi_profile():
    r = price(LAYERS, "standard", "loihi")
    for key in ("ac", "mac", "sops", "energy_j"):
        assert r["total"][key] == pytest.approx(sum(row[key] for row in r["layers"]))
    assert r["total"]["energy_j"] == pytest.approx(23.6 * 1450 * 1e-12)


def test_roles():
    assert layer_role("layers.2.3.conv.0.1") == "FFN grouped 3x3"
    assert layer_role("layers.1.0.conv") == "downsample 3x3"
    assert layer_role("layers.1.3.Wproj") == "DSSA projection"


def test_renderers(tmp_path):
    r = price(LAYERS, "standard")
    rows = list(csv.DictReader(io.StringIO(to_csv(r))))
    assert [row["name"] for row in rows] == [layer["name"] for layer in LAYERS] + ["TOTAL"]
    assert float(rows[-1]["energy_j"]) == pytest.approx(r["total"]["energy_j"])
    md = to_markdown(r)
    assert "| **total** |" in md and "standard" in md
    plot(r, tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
