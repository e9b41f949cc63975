"""lava-dl's PilotNet SNN (a netx file written by lava-dl, not by us) through ``simulate --backend lava``: our import
of the file, built as Lava processes, equals our import run by hw_sim's executor, spike for spike, on one frame.
(``test_netx_import.py`` checks the import itself against lava-dl's own netx run of the file.)"""

import json

import numpy as np
import pytest

from testutil import ROOT

PILOTNET = ROOT / "tests" / "data" / "lava-dl" / "pilotnet_snn" / "network.net"


def test_lavas_grid_leaves_pilotnets_integers_alone():
    """``simulate X.net --backend lava`` runs the import on Lava's grid (a model made here): for a netx file,
    whose integers are already Lava's, that grid must change nothing, or the run would not be our import."""
    from exporters.lava.grid import lava_grid
    from exporters.loihi.netx_import import read_netx

    pg = read_netx(PILOTNET)
    g = lava_grid(pg)
    for p in pg:
        for k, v in p.params.items():
            np.testing.assert_array_equal(np.asarray(g.processes[p.name].params[k]), np.asarray(v), err_msg=p.name)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pilotnet_through_the_lava_backend_equals_our_import():
    """One synthetic frame, the file's T = 16 steps: every one of PilotNet's 10 neuron layers (its 200-wide first
    conv as a Sparse: Lava's Conv computes its geometry in int8) and the voltage readout equal the executor's."""
    pytest.importorskip("lava.proc.lif.process", reason="Lava is not installed (bash .ci/install-lava)")
    from testutil import run_cli

    r = run_cli("simulate", PILOTNET, "--backend", "lava", "--limit", 1, "--data", "synthetic", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert s["samples"] == 1 and s["processes"] == 11   # 10 neuron layers and the readout
    assert s["spikes"] > 0, "a silent network would agree trivially"
    assert s["agreement"] == 1.0 and s["first_mismatch"] is None, s
