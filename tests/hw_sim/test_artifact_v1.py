"""A version-1 artifact written by the previous release still reads, simulates and maps.

Version 1 stored untyped attrs and a mapping made under the old rule (every synapse stored);
today's reader fills in version 1's fixed widths and maps the graph again on the built-in
chip the file names (hw_sim/artifact.py, ``_load_version_1``). The file is real: written
by commit f16d75d (tests/data/artifact_v1/README.md), not downgraded from a version-2 one.
"""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.artifact import ArtifactError, read_artifact
from hw_sim.chips import load_chip
from hw_sim.executor import Executor
from hw_sim.mapping import map_graph

V1 = Path(__file__).resolve().parents[1] / "data" / "artifact_v1" / "tiny_v1.loihi"


def test_the_file_is_version_1():
    with h5py.File(V1, "r") as f:
        assert int(f.attrs["version"]) == 1
        assert "synapse_memory_bits" in json.loads(f["mapping"].attrs["chip"])   # the old chip fields


def test_a_version_1_artifact_simulates_as_the_integer_model_and_is_mapped_again():
    pg, mapping, _ = read_artifact(V1)
    assert {p.kind for p in pg} >= {"input", "synapse", "neuron"}
    assert all(p.attrs.decay_bits == 12 for p in pg if p.kind == "neuron")
    assert all(p.attrs.weight_bits == 8 for p in pg if p.kind == "synapse")
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 4
    res = Executor(pg).run(x)
    # the logits the previous release's executor computed from this file for these inputs
    assert np.array_equal(res.logits.numpy(), np.load(V1.with_name("tiny_v1_logits.npy")))
    ref, _ = FakeQuantModel(pg).run(x, keep=True)
    assert torch.equal(res.logits.double(), ref.expand(res.logits.shape))
    fresh = map_graph(pg, load_chip("loihi2"))
    assert mapping.chip["name"] == "loihi2" and "memory_words" in mapping.chip
    assert {n: g.cores for n, g in mapping.groups.items()} == {n: g.cores for n, g in fresh.groups.items()}


def test_a_version_1_artifact_on_a_custom_chip_is_refused_in_one_line(tmp_path):
    odd = tmp_path / "odd.loihi"
    shutil.copy(V1, odd)
    with h5py.File(odd, "r+") as f:
        chip = json.loads(f["mapping"].attrs["chip"])
        f["mapping"].attrs["chip"] = json.dumps({**chip, "name": "my-board"})
    with pytest.raises(ArtifactError, match="version-1 artifact mapped on chip 'my-board'") as e:
        read_artifact(odd)
    assert "\n" not in str(e.value) and "re-export" in str(e.value)


V2 = Path(__file__).resolve().parents[1] / "data" / "artifact_v2" / "tiny_v2.loihi"


def test_a_version_2_artifact_from_before_the_chip_formats_runs_as_it_ran():
    """Written by commit 17c9fd6 (tests/data/artifact_v2/README.md): no out_bits, a chip without the
    format fields; read with the chip's state width, mapped again on today's loihi2, same logits."""
    with h5py.File(V2, "r") as f:
        assert int(f.attrs["version"]) == 2
        assert "bias_mant_bits" not in json.loads(f["mapping"].attrs["chip"])
    pg, mapping, _ = read_artifact(V2)
    assert all(p.attrs.out_bits == 24 for p in pg if p.kind == "synapse")
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 4
    res = Executor(pg).run(x)
    assert np.array_equal(res.logits.numpy(), np.load(V2.with_name("tiny_v2_logits.npy")))
    assert mapping.chip == {**load_chip("loihi2").__dict__}
    assert mapping.cores == map_graph(pg, load_chip("loihi2")).cores
