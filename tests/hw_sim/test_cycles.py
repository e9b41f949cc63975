"""The cycle and energy model on hand-made counts, against arithmetic done by hand."""

import dataclasses

import numpy as np
import pytest
import torch

from hw_sim.chips import load_energy_profile
from hw_sim.counters import CORE_KEYS
from hw_sim.cycles import (
    barrier_ns,
    busy_ns,
    energy_j,
    energy_terms,
    pipelined_busy,
    streaming,
    timing,
    units_ns,
    window_idle,
)

ROUND = load_energy_profile("loihi")
# round numbers so every figure below is checkable by hand
PROF = dataclasses.replace(ROUND, name="round", synop_ns=2.0, neuron_update_active_ns=10.0,
                           neuron_update_idle_ns=1.0, spike_in_tile_ns=3.0, hop_ew_ns=5.0, hop_ns_ns=7.0,
                           barrier_ns=100.0, ac_pj=1.0, mac_pj=4.0, neuron_active_pj=80.0, neuron_idle_pj=50.0,
                           spike_in_tile_pj=2.0, hop_ew_pj=3.0, hop_ns_pj=4.0, operand_write_pj=0.5,
                           operand_write_ns=1.5, spike_out_pj=6.0, message_out_pj=9.0, static_w_per_chip=0.25,
                           message_out_ns=3.0, spike_out_ns=0.0, message_in_ns=0.0, message_in_pj=0.0,
                           synop_conv_ns=0.0, synop_dense_ns=0.0, synop_sparse_ns=0.0, synop_conv_pj=0.0,
                           synop_dense_pj=0.0, synop_sparse_pj=0.0, barrier_tiles_ns=(),
                           chip_link_pj=0.0, chip_link_ns=0.0)


def counts(T=2, B=1, K=2, **per_core):
    """``[T, B, K]`` counts: each key's value list is per core, the same at every step and sample."""
    core = {k: torch.zeros(T, B, K, dtype=torch.float64) for k in CORE_KEYS}
    for k, v in per_core.items():
        core[k][:] = torch.tensor(v, dtype=torch.float64)
    return core


def test_busy_time_per_core():
    core = counts(ac=[10, 0], mac=[1, 0], active=[2, 1], idle=[3, 0], msgs=[4, 1], hops_ew=[1, 0], hops_ns=[0, 2])
    # core 0: 11*2 + 2*10 + 3*1 + 4*3 + 1*5 = 62; core 1: 1*10 + 1*3 + 2*7 = 27
    assert busy_ns(core, PROF)[0, 0].tolist() == [62.0, 27.0]
    # a core that rewrites 4 held operand entries a step (loihi2-opmem) spends 4 * 1.5 ns more
    core["operand_writes"][:] = torch.tensor([4.0, 0.0])
    assert busy_ns(core, PROF)[0, 0].tolist() == [68.0, 27.0]


def test_latency_zero_delay_and_pipelined():
    core = counts(ac=[10, 0], active=[2, 1], idle=[3, 0], msgs=[4, 1], hops_ns=[0, 2])
    # busy: core 0 = 20 + 20 + 3 + 12 = 55, core 1 = 10 + 3 + 14 = 27; step = 55 + 100 barrier
    delays = np.array([0, 1])
    compartments = torch.tensor([5.0, 1.0])
    tm = timing(core, PROF, delays, compartments)
    assert tm["step_s"][:, 0].tolist() == pytest.approx([155e-9, 155e-9])
    assert tm["latency_s"].tolist() == pytest.approx([310e-9])
    # pipelined: T + depth = 3 chip steps. Step 0: core 0 data (55), core 1 idle (1 compartment x 1 ns);
    # step 1: both data (55, 27); step 2: core 0 idle (5 x 1 ns), core 1 data (27)
    pipe = pipelined_busy(busy_ns(core, PROF), delays, compartments * PROF.neuron_update_idle_ns)
    assert pipe[:, 0].tolist() == [[55.0, 1.0], [55.0, 27.0], [5.0, 27.0]]
    assert tm["latency_pipelined_s"].tolist() == pytest.approx([(155 + 155 + 127) * 1e-9])
    assert tm["busy_ns"].tolist() == [110.0, 54.0] and tm["slowest"].tolist() == [2, 0]


def test_energy_terms_by_hand():
    totals = {"ac": 100, "mac": 10, "active": 3, "idle": 7, "in_tile": 5, "hops_ew": 2, "hops_ns": 1,
              "operand_writes": 8, "spikes": 4, "msgs": 6}
    # 2 chips held for 1 us each inference at 0.25 W a chip: 0.5 uJ static
    terms = energy_terms(totals, PROF, chips=2, seconds_per_inference=1e-6)
    want = {"ac": 100, "mac": 40, "neuron_active": 240, "neuron_idle": 350, "spike_in_tile": 10,
            "hop_ew": 6, "hop_ns": 4, "operand_write": 4,   # 8 entries rewritten x 0.5 pJ
            "spike_out": 24, "message_out": 54, "static": 500_000,   # 4 spikes x 6 pJ, 6 messages x 9 pJ
            "synop_conv": 0, "synop_dense": 0, "synop_sparse": 0, "message_in": 0, "chip_link": 0}
    assert terms == pytest.approx({k: v * 1e-12 for k, v in want.items()})
    assert energy_j(totals, PROF, chips=2, seconds_per_inference=1e-6) == pytest.approx((754 + 78 + 500_000) * 1e-12)
    assert energy_terms(totals, PROF)["static"] == 0.0   # no wall time given: nothing static


def test_accounting_window_and_streaming():
    # depth 3: 6 compartments updated idly in each of the 3 chip steps beyond the T data steps
    assert window_idle(6.0, 3) == 18.0
    # T = 4 data steps + depth 3 = 7 chip steps in 7 us: 1 us a step; a new frame every 4 steps
    s = streaming(7e-6, 4, 3)
    assert s["step_time_s"] == pytest.approx(1e-6) and s["throughput_ips"] == pytest.approx(250_000.0)
    assert streaming(0.0, 4, 3) == {"step_time_s": 0.0, "throughput_ips": 0.0}   # a free profile divides by nothing


def test_paper_profile_reduces_to_ac_and_mac():
    totals = {"ac": 1000, "mac": 100, "active": 55, "idle": 99, "in_tile": 12, "hops_ew": 3, "hops_ns": 4}
    assert energy_j(totals, load_energy_profile("paper-45nm")) == pytest.approx((0.9 * 1000 + 4.6 * 100) * 1e-12)


def test_encodings_message_in_and_chip_links_priced_by_hand():
    prof = dataclasses.replace(PROF, synop_conv_pj=2.0, synop_dense_pj=3.0, message_in_pj=1.5, chip_link_pj=10.0)
    totals = {"ac": 100, "mac": 10, "active": 0, "idle": 0, "in_tile": 0, "hops_ew": 0, "hops_ns": 0,
              "syn_conv": 30, "syn_dense": 20, "syn_sparse": 5, "msgs_in": 6, "chip_links": 2}
    t = {k: v / 1e-12 for k, v in energy_terms(totals, prof).items()}
    # 30 conv ops x 2 pJ, 20 dense x 3 pJ; sparse has no price of its own: 5 x ac_pj 1; the other 45 ACs x 1
    assert (t["synop_conv"], t["synop_dense"], t["synop_sparse"], t["ac"]) == pytest.approx((60, 60, 5, 45))
    assert (t["message_in"], t["chip_link"], t["mac"]) == pytest.approx((9, 20, 40))


def test_units_and_barrier_by_system_size():
    prof = dataclasses.replace(PROF, message_in_ns=2.0, spike_out_ns=1.0, synop_conv_ns=4.0, chip_link_ns=50.0)
    core = counts(ac=[10, 0], syn_conv=[5, 0], msgs_in=[0, 5], active=[2, 1], idle=[3, 0], spikes=[4, 0],
                  msgs=[4, 1], in_tile=[1, 0], hops_ew=[1, 0], hops_ns=[0, 2], chip_links=[0, 1])
    u = {k: v[0, 0].tolist() for k, v in units_ns(core, prof).items()}
    # input: 5 plain ACs x 2 + 5 conv x 4 = 30; 5 messages in x 2 = 10
    assert u["input"] == [30.0, 10.0]
    assert u["soma"] == [2 * 10 + 3 * 1 + 4 * 1, 1 * 10]            # updates, then spikes generated x 1
    assert u["output"] == [4 * 3 + 1 * 3, 1 * 3]                     # messages out x 3, in-tile x 3
    assert u["network"] == [1 * 5, 2 * 7 + 1 * 50]                   # hops, and a chip link x 50
    # barrier by tiles in use, a step table (SANA-FE's Loihi sync table: 0.6 us at 1 tile ... 1.8 us from 29)
    b = dataclasses.replace(PROF, barrier_tiles_ns=((1, 600.0), (2, 1000.0), (4, 1400.0), (29, 1800.0)))
    assert [barrier_ns(b, n) for n in (1, 2, 3, 4, 28, 29, 500)] == [600, 1000, 1000, 1400, 1400, 1800, 1800]
    assert barrier_ns(dataclasses.replace(PROF, barrier_tiles_ns=((4, 50.0),)), 2) == 100.0   # below: barrier_ns
    assert barrier_ns(PROF, 10) == 100.0   # no size table: the one figure


def test_detailed_timing_overlaps_units_and_books_input_in_the_senders_step():
    prof = dataclasses.replace(PROF, message_in_ns=2.0, spike_out_ns=1.0)
    core = counts(ac=[10, 0], msgs_in=[0, 5], active=[2, 1], idle=[3, 0], spikes=[4, 0], msgs=[4, 1],
                  hops_ew=[1, 0], hops_ns=[0, 2])
    delays, comp = np.array([0, 1]), torch.tensor([5.0, 1.0])
    # units: core 0 input 20, soma 2*10 + 3 + 4 = 27, output 12, network 5; core 1 input 10, soma 10, output 3
    simple = timing(core, prof, delays, comp)
    # simple: serial, 64 and 37 a data step; chip steps (64, 1 idle), (64, 37), (5 idle, 37)
    assert simple["latency_pipelined_s"].tolist() == pytest.approx([(164 + 164 + 137) * 1e-9])
    d = timing(core, prof, delays, comp, mode="detailed")
    # detailed: core 1's input (delay 1) runs in chip steps 0 and 1, when core 0 sends; its soma in 1 and 2.
    # step 0: max(20, 27) = 27 | max(10, 1 idle) = 10; step 1: 27 | max(10, 10); step 2: 5 idle | 10
    assert d["latency_pipelined_s"].tolist() == pytest.approx([(127 + 127 + 110) * 1e-9])
    # the mesh as a unit: 4 messages on a 5 ns link and 1 on a 7 ns one, longest path 12 ns, in core 0's steps
    links = {0: (torch.tensor([[[4.0, 1.0]], [[4.0, 1.0]]]), torch.full((2, 1), 12.0))}
    d = timing(core, prof, delays, comp, mode="detailed", links=links, link_ns=torch.tensor([5.0, 7.0]))
    assert d["latency_pipelined_s"].tolist() == pytest.approx([(132 + 132 + 110) * 1e-9])
    with pytest.raises(ValueError, match="timing model"):
        timing(core, prof, delays, comp, mode="fast")
