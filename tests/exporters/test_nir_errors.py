"""Bad NIR input: one-line NIRError (a UserError) naming the node and the problem; the CLI exits 2."""


import nir
import numpy as np
import pytest
import torch

import sresformer
from exporters.nir import NIRError, load, load_for_eval, write_graph
from exporters.nir.extension import placeholder_conv
from sresformer.errors import UserError


def _write(tmp_path, nodes, edges, metadata=None, name="g.nir"):
    path = tmp_path / name
    write_graph(nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata or {}), path)
    return path


def _chain(tmp_path, *nodes, metadata=None):
    names = ["input"] + [f"n{i}" for i in range(len(nodes))] + ["output"]
    first, last = nodes[0].input_type["input"], nodes[-1].output_type["output"]
    all_nodes = dict(zip(names, [nir.Input(np.array(first)), *nodes, nir.Output(np.array(last))], strict=True))
    return _write(tmp_path, all_nodes, list(zip(names, names[1:], strict=False)), metadata)


def _one_line(err):
    msg = str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in msg
    return msg


def test_missing_empty_and_corrupt_files(tmp_path):
    with pytest.raises(NIRError, match="does not exist") as e:
        load(tmp_path / "none.nir")
    _one_line(e)
    (tmp_path / "text.nir").write_text("not hdf5")
    with pytest.raises(NIRError, match="not a NIR file"):
        load(tmp_path / "text.nir")
    good = _chain(tmp_path, nir.Scale(scale=np.ones(3, np.float32)))
    (tmp_path / "cut.nir").write_bytes(good.read_bytes()[:600])
    with pytest.raises(NIRError, match="corrupt or truncated|not a NIR file"):
        load(tmp_path / "cut.nir")


def test_unsupported_node_type_is_named(tmp_path):
    path = _chain(tmp_path, nir.Delay(delay=np.ones(3)))
    with pytest.raises(NIRError, match=r"node 'n0': unsupported NIR node type Delay") as e:
        load(path)
    _one_line(e)


def test_shape_mismatch_nir_does_not_check_is_caught(tmp_path):
    # NIR's types ignore groups; torch cannot run 4 input channels through groups=3
    conv = nir.Conv2d(input_shape=(5, 5), weight=np.ones((6, 4, 3, 3), np.float32), stride=1, padding=1,
                      dilation=1, groups=3, bias=np.zeros(6, np.float32))
    with pytest.raises(NIRError, match=r"node 'n0' \(Conv2d\): input of shape \(4, 5, 5\) does not fit"):
        load(_chain(tmp_path, conv))


def test_type_mismatch_caught_by_nir_read(tmp_path):
    nodes = {"input": nir.Input(np.array([5])), "lin": nir.Linear(weight=np.ones((2, 3), np.float32)),
             "output": nir.Output(np.array([2]))}
    path = tmp_path / "bad.nir"
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=[("input", "lin"), ("lin", "output")], type_check=False))
    with pytest.raises(NIRError, match="not a valid NIR graph.*type mismatch"):
        load(path)


def test_unknown_extension_and_stray_placeholder(tmp_path):
    scale = nir.Scale(scale=np.ones((2, 4, 4), np.float32))
    path = _chain(tmp_path, scale, metadata={"extensions_required": "acme.teleport"})
    with pytest.raises(NIRError, match="does not know: acme.teleport"):
        load(path)
    path = _chain(tmp_path, placeholder_conv((2, 4, 4), (2, 4, 4)))
    with pytest.raises(NIRError, match=r"node 'n0': Conv2d groups=0"):
        load(path)


def test_recurrent_graph_is_refused(tmp_path):
    lif = nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    nodes = {"input": nir.Input(np.array([3])), "lif": lif, "rec": nir.Linear(weight=np.eye(3, dtype=np.float32)),
             "output": nir.Output(np.array([3]))}
    path = _write(tmp_path, nodes, [("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")])
    with pytest.raises(NIRError, match="cycle through lif, rec"):
        load(path)


def test_wrong_input_and_non_classifier_graph(tmp_path):
    path = _chain(tmp_path, nir.Scale(scale=np.ones((2, 4, 3), np.float32)))
    with pytest.raises(NIRError, match="does not match the graph's"):
        load(path)(torch.zeros(1, 1, 2, 4, 4))
    with pytest.raises(NIRError, match="needs input \\[C, H, H\\] and output \\[K\\]"):
        load_for_eval(path)


def _cli(*args):
    """The CLI in this process (testutil.run_cli_here): the exit status and output are tested, not the process."""
    from testutil import run_cli_here

    return run_cli_here(*args)


def test_cli_export_and_bad_nir_exit_2(tmp_path):
    from testutil import warm_up
    model = sresformer.create_model("spikingresformer_nano", num_classes=3, img_size=32, T=2)
    warm_up(model, torch.randn(2, 3, 32, 32))
    sresformer.save_checkpoint(model, tmp_path / "m.ckpt")
    ok = _cli("export", str(tmp_path / "m.ckpt"), "--target", "nir", "--out", str(tmp_path / "m.nir"), "--json")
    assert ok.returncode == 0, ok.stderr
    assert '"extensions_required": ["sresformer.dual_spike_matmul", "sresformer.max_pool2d"]' in ok.stdout
    with torch.no_grad():
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(load_for_eval(tmp_path / "m.nir")(x), model(x), rtol=0, atol=1e-7)

    (tmp_path / "bad.nir").write_bytes(b"\x89HDF\r\n garbage")
    bad = _cli("export", str(tmp_path / "bad.nir"), "--target", "nir", "--out", str(tmp_path / "out.nir"))
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("sresformer: error:") and bad.stderr.count("\n") == 1
    assert not (tmp_path / "out.nir").exists()
