"""Artifacts as older versions wrote them (converted from the crafted tests' valid artifact): version 2
without ``out_bits``, version 1 without the typed widths; they read as the same graph, and a version-1
file with a later version's fields is refused in one line."""

from __future__ import annotations

import json
import shutil

import h5py
import pytest

# ``valid``: the crafted tests' artifact fixture, shared (ruff reads a fixture parameter as a redefinition)
from test_artifact_crafted import _proc, valid  # noqa: F401

from hw_sim.artifact import ArtifactError, read_artifact

pytestmark = pytest.mark.usefixtures("one_thread")


def _as_version(src, dst, version: int):
    """The artifact as an older version wrote it: version 4 had no running sums; version 3 no neuron reset;
    version 2 no out_bits either;
    version 1 neither weight_bits nor decay_bits, and no null (absent) keys."""
    shutil.copy(src, dst)
    dropped = ("running",) + (("reset", "in_shift") if version < 4 else ()) + \
        (("out_bits",) if version < 3 else ()) + \
        (("weight_bits", "decay_bits") if version == 1 else ())
    with h5py.File(dst, "r+") as f:
        f.attrs["version"] = version
        for g in f["processes"].values():
            if g.attrs["kind"] == "prodmm" and version < 3:   # versions 1 and 2 named every product dsmm
                g.attrs["kind"] = "dsmm"
            a = {k: v for k, v in json.loads(g.attrs["attrs"]).items()
                 if (v is not None or version > 1) and k not in dropped}
            g.attrs["attrs"] = json.dumps(a)


def _as_version_1(src, dst):
    _as_version(src, dst, 1)


def test_version_2_artifacts_saturate_at_the_chip_state_width(valid, tmp_path):  # noqa: F811
    """A version-2 file has no out_bits: its graded values get the chip's state_bits (24 on loihi2), the
    width the tiny graph was written with, so it reads as the same graph."""
    v2 = tmp_path / "v2.loihi"
    _as_version(valid[0], v2, 2)
    with h5py.File(v2, "r") as f:
        assert "out_bits" not in json.loads(_proc(f, "c1").attrs["attrs"])
    old, new = read_artifact(v2)[0], read_artifact(valid[0])[0]
    assert {p.name: p.attrs for p in old} == {p.name: p.attrs for p in new}
    assert old.processes["sp"].attrs.out_bits == 24


def test_version_3_artifacts_reset_to_zero(valid, tmp_path):  # noqa: F811
    """A version-3 file has no neuron reset: its neurons get Loihi's reset to 0, the only one version 3
    had, so it reads as the same graph; a reset key in a version-3 file is refused."""
    v3 = tmp_path / "v3.loihi"
    _as_version(valid[0], v3, 3)
    with h5py.File(v3, "r") as f:
        assert "reset" not in json.loads(_proc(f, "n1").attrs["attrs"])
    old, new = read_artifact(v3)[0], read_artifact(valid[0])[0]
    assert {p.name: p.attrs for p in old} == {p.name: p.attrs for p in new}
    assert old.processes["n1"].attrs.reset == "zero"
    with h5py.File(v3, "r+") as f:
        g = _proc(f, "n1")
        g.attrs["attrs"] = json.dumps({**json.loads(g.attrs["attrs"]), "reset": "subtract"})
    with pytest.raises(ArtifactError, match="unknown key 'reset' for a version-3 neuron"):
        read_artifact(v3)


def test_version_4_artifacts_have_plain_sums(valid, tmp_path):  # noqa: F811
    """A version-4 file has no sum ``running``: its sums are plain ones (the only kind version 4 had),
    so it reads as the same graph; a running key in a version-4 file is refused."""
    v4 = tmp_path / "v4.loihi"
    _as_version(valid[0], v4, 4)
    old, new = read_artifact(v4)[0], read_artifact(valid[0])[0]
    assert {p.name: p.attrs for p in old} == {p.name: p.attrs for p in new}
    sums = [p.name for p in old if p.kind == "sum"]
    assert sums and all(old.processes[n].attrs.running == "none" for n in sums)
    with h5py.File(v4, "r+") as f:
        g = _proc(f, sums[0])
        g.attrs["attrs"] = json.dumps({**json.loads(g.attrs["attrs"]), "running": "inclusive"})
    with pytest.raises(ArtifactError, match="unknown key 'running' for a version-4 sum"):
        read_artifact(v4)


def test_version_1_artifacts_read_as_they_ran(valid, tmp_path):  # noqa: F811
    """A version-1 file gets the fixed widths of version 1 (8-bit mantissas, 12-bit decays) and reads
    as the same graph; it simulates the same integers."""
    import torch

    from hw_sim.executor import Executor

    v1 = tmp_path / "v1.loihi"
    _as_version_1(valid[0], v1)
    with h5py.File(v1, "r") as f:   # the conversion really removed the version-2 fields
        a = json.loads(_proc(f, "n1").attrs["attrs"])
        assert "decay_bits" not in a and json.loads(_proc(f, "fc").attrs["attrs"]) == \
            {"op": "dense", "shift": -2, "graded_input": True}
    old, new = read_artifact(v1)[0], read_artifact(valid[0])[0]
    assert {p.name: p.attrs for p in old} == {p.name: p.attrs for p in new}
    assert old.processes["n1"].attrs.decay_bits == 12 and old.processes["fc"].attrs.weight_bits == 8
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(Executor(old).run(x).logits, Executor(new).run(x).logits)


@pytest.mark.parametrize("edit,match", [
    (lambda f: _proc(f, "n1").attrs.__setitem__("attrs", json.dumps(
        {**json.loads(_proc(f, "n1").attrs["attrs"]), "decay_bits": 12})), "unknown key 'decay_bits' for a version-1"),
    (lambda f: _proc(f, "c2").attrs.__setitem__("attrs", json.dumps(
        {k: v for k, v in json.loads(_proc(f, "c2").attrs["attrs"]).items() if k != "groups"})), "needs groups"),
])
def test_version_1_files_with_version_2_fields_are_refused(valid, tmp_path, edit, match):  # noqa: F811
    v1 = tmp_path / "v1.loihi"
    _as_version_1(valid[0], v1)
    with h5py.File(v1, "r+") as f:
        edit(f)
    with pytest.raises(ArtifactError, match=match) as e:
        read_artifact(v1)
    assert "\n" not in str(e.value) and "re-export" in str(e.value)
