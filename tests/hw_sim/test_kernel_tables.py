"""Every implementation of the program format binds exactly the format's kinds, in one table each.

The kinds are ``hw_sim.processes.KIND_ATTRS``; an implementation that misses a kind (or names
one the format does not have) would fail at run time on the first graph holding it. The
tables are checked here against the format, and the format's attribute classes against
their declared field metadata (what the artifact reader validates by).
"""

from __future__ import annotations

import dataclasses

import pytest

from exporters.quantize.fakequant import FakeQuantModel
from hw_sim.artifact_bounds import BOUNDS
from hw_sim.artifact_check import CHECKS, WIDTHS
from hw_sim.connectivity import COUNT_RULES, CountRule
from hw_sim.executor import Executor
from hw_sim.processes import KIND_ATTRS, KINDS, Process, make_attrs
from hw_sim.products import FORMS, PRODUCT_FORMS, form_dims
from hw_sim.reach import BACK

TABLES = {"fake-quant kernels": FakeQuantModel.KERNELS, "executor plans": Executor.PLANS,
          "executor kernels": Executor.RUNS, "connectivity": BACK, "counters": COUNT_RULES,
          "artifact checks": CHECKS, "artifact bounds": BOUNDS}


@pytest.mark.parametrize("name", TABLES)
def test_every_implementation_covers_every_kind(name):
    assert set(TABLES[name]) == set(KINDS), f"{name}: missing {set(KINDS) - set(TABLES[name])}, " \
                                           f"extra {set(TABLES[name]) - set(KINDS)}"
    assert all(callable(k) or isinstance(k, CountRule) for k in TABLES[name].values())


def test_param_widths_name_only_kinds_with_params():
    assert set(WIDTHS) <= set(KINDS) and set(WIDTHS) == {"synapse", "neuron", "attngate"}


def test_kinds_are_the_format_table():
    assert KINDS == ("input", "synapse", "neuron", "sum", "dsmm", "prodmm", "sumpool", "maxpool", "flatten", "attngate",
                     "gate")
    for kind, cls in KIND_ATTRS.items():
        assert cls.kind == kind and dataclasses.is_dataclass(cls)
        assert "=" in (cls.__doc__ or "") or "reshape" in cls.__doc__, f"{kind}: its equation is its docstring"
        for f in dataclasses.fields(cls):   # the reader validates every field by its metadata
            assert f.metadata.get("type") in (int, bool, float, str, "pair"), (kind, f.name)


def test_dict_attrs_convert_and_refuse_unknown_or_missing_keys():
    p = Process("n", "neuron", [], (2,), attrs={"du": 4096, "dv": 0, "state_bits": 24, "decay_bits": 12})
    assert p.attrs.du == 4096 and p.attrs.unity == 4096 and p.spiking
    with pytest.raises(ValueError, match="no attribute 'zz'"):
        Process("n", "neuron", [], (2,), attrs={"du": 4096, "dv": 0, "state_bits": 24, "decay_bits": 12, "zz": 1})
    with pytest.raises(ValueError, match="needs attribute 'decay_bits'"):
        Process("n", "neuron", [], (2,), attrs={"du": 4096, "dv": 0, "state_bits": 24})
    with pytest.raises(ValueError, match="a conv synapse needs"):
        make_attrs("synapse", {"op": "conv", "shift": 0, "graded_input": False, "weight_bits": 8})
    with pytest.raises(ValueError, match="dense synapse has no groups"):
        make_attrs("synapse", {"op": "dense", "shift": 0, "graded_input": False, "weight_bits": 8, "groups": 1})
    with pytest.raises(ValueError, match="takes SumAttrs"):
        Process("s", "sum", ["a"], (2,), attrs=make_attrs("flatten", {}))
    assert make_attrs("maxpool", {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0]}).kernel == (2, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.attrs.du = 0


# Hand-worked per-head shapes of every form (the papers' equations), for one head:
# DSSA: y [2d, N] with d = 3, N = 5; S [d, HW] (y1T@s) or A [N, HW] (y2@a), HW = 4.
# SSA: K, V, Q [d, N] with d = 3, N = 4; KV [d, d]; QK [N, N].
HAND = {"y1T@s": ((6, 5, 1), (3, 2, 2), (5, 3), (3, 4), 5),     # y1^T [N, d] @ S [d, HW]; a spike adds N
        "y2@a": ((6, 5, 1), (5, 2, 2), (3, 5), (5, 4), 3),      # y2 [d, N] @ A [N, HW]; a spike adds d
        "kT@v": ((3, 2, 2), (3, 2, 2), (3, 4), (4, 3), 3),      # K [d, N] @ V^T [N, d]
        "q@kv": ((3, 3, 1), (3, 2, 2), (3, 3), (3, 4), 3),      # KV^T [d, d] @ Q [d, N]
        "q@kT": ((3, 2, 2), (3, 2, 2), (4, 3), (3, 4), 4),      # Q^T [N, d] @ K [d, N]
        "qk@v": ((4, 2, 2), (3, 2, 2), (3, 4), (4, 4), 4),      # V [d, N] @ QK^T [N, N]; spikes on the left
        # MST's cumulative product: counts C [d, N] against spikes; Sq [d, N], SA [N, N]
        "sq@ckT": ((3, 2, 2), (3, 2, 2), (4, 3), (3, 4), 4),    # Sq^T [N, d] @ Ck [d, N]; spikes on the left
        "sa@cv": ((3, 2, 2), (4, 2, 2), (3, 4), (4, 4), 3)}     # Cv [d, N] @ SA^T [N, N]


@pytest.mark.parametrize("form", FORMS)
def test_product_forms_give_the_papers_shapes(form):
    dyn, spk, left, right, ac = HAND[form]
    dims = form_dims(form, 1, dyn, spk)
    assert (dims.left, dims.right, dims.ac_per_spike) == (left, right, ac)
    assert PRODUCT_FORMS[form].spk_side == ("left" if form in ("qk@v", "sq@ckT") else "right")


def test_product_forms_refuse_operands_that_do_not_multiply():
    with pytest.raises(ValueError, match="do not multiply"):
        form_dims("y1T@s", 1, (6, 5, 1), (4, 2, 2))
    with pytest.raises(ValueError, match="2 halves"):
        form_dims("y2@a", 1, (5, 5, 1), (5, 2, 2))
