"""Every count the mapping reports, against a recount by hand on graphs small enough to work out.

The expected numbers are worked out in the comments from the chip's rules (hw_sim/resources.py:
words = 3 per CUBA compartment + synapse words + 2 per input axon on ``loihi2``; a
convolutional row is ``ceil(channels * bits / conv_word_bits) + 1`` words), not taken from the
mapper.
"""

import dataclasses

import numpy as np
import pytest

from hw_sim.chips import load_chip
from hw_sim.mapping import MappingError, map_graph
from hw_sim.processes import Process, ProcessGraph

NEURON = {"du": 4096, "dv": 0, "state_bits": 24, "decay_bits": 12}


def _syn(name, src, shape, w, op="conv", graded=False, **geometry):
    w = np.asarray(w, dtype=np.int64)
    return Process(name, "synapse", [src], shape, params={"weight": w, "bias": np.zeros(shape[0], np.int64)},
                   attrs={"op": op, "shift": 0, "graded_input": graded, "weight_bits": 8, **geometry})


def _neuron(name, src, shape):
    return Process(name, "neuron", [src], shape, params={"vth": np.array([64])}, attrs=dict(NEURON))


def _graph(procs, output, shape):
    return ProcessGraph({p.name: p for p in procs}, output, T=2, input_shape=shape)


def _conv(stride, padding, groups=1):
    return {"stride": stride, "padding": padding, "dilation": (1, 1), "groups": groups}


def two_convs() -> ProcessGraph:
    """input (1, 6, 6) -> conv 3x3 pad 1 -> n1 (2, 6, 6) -> conv 3x3 stride 2 pad 1, 2 groups -> n2 (4, 3, 3)."""
    w1 = np.array([1, -2, 3, 1, 2, -3, 1, 1, 2] * 2).reshape(2, 1, 3, 3)      # |w| <= 3, odd: 3 bits stored
    w2 = np.array([3, 1, -1, 2, 1, 1, -2, 1, 1] * 4).reshape(4, 1, 3, 3)
    return _graph([Process("input", "input", [], (1, 6, 6), attrs={"bits": 8}, static=True),
                   _syn("s1", "input", (2, 6, 6), w1, graded=True, **_conv((1, 1), (1, 1))),
                   _neuron("n1", "s1", (2, 6, 6)),
                   _syn("s2", "n1", (4, 3, 3), w2, **_conv((2, 2), (1, 1), groups=2)),
                   _neuron("n2", "s2", (4, 3, 3))], "n2", (1, 6, 6))


def test_two_convs_with_stride_padding_and_groups():
    chip = dataclasses.replace(load_chip("loihi2"), neurons_per_core=24, conv_word_bits=4)
    m = map_graph(two_convs(), chip)
    n1, n2 = m.groups["n1"], m.groups["n2"]
    # n1 (2 x 6 x 6): a column of all channels is 2 * 6 = 12 compartments; slabs of 1, 2, 4 columns are
    # 12, 24, 48 compartments and 48 > 24 per core: chunk 24, 3 cores. Flat C,H,W: core 0 = ch0 rows 0-3,
    # core 1 = ch0 rows 4-5 + ch1 rows 0-1, core 2 = ch1 rows 2-5.
    assert (n1.chunk, n1.cores) == (24, 3)
    # n2 (4 x 3 x 3): a column is 12; slabs 12, 24, 48: chunk 24, 2 cores (core 0 = ch0, ch1, ch2 rows 0-1)
    assert (n2.chunk, n2.cores) == (24, 2)
    # synapse words, 3-bit weights in 4-bit words: a row of n channels is ceil(3n / 4) + 1 words
    # (1 channel: 2, 2 channels: 3). n1 (1 input channel, 9 taps): core 1 spans 2 channels: 9 * 3 = 27.
    # Input axons: one per x-stride phase per group spanned = 1. Words: 24 * 3 + 27 + 1 * 2 = 101.
    assert (n1.words_per_core, n1.axons_per_core) == (101, 1)
    # n2 core 0: channels 0, 1 (group 0, 2 channels: 3 words) and channel 2 (group 1, 1 channel: 2 words)
    # per tap of its one input channel: 9 * (3 + 2) = 45; axons: x-stride 2 x 2 groups = 4;
    # words 24 * 3 + 45 + 4 * 2 = 125 (core 1: 12 * 3 + 27 + 2 * 2 = 67)
    assert (n2.words_per_core, n2.axons_per_core) == (125, 4)
    # stored synapses (taps inside the map): n1 per channel rows 0 and 5 hold 4+6+6+6+6+4 = 32, rows 1-4
    # hold 6+9*4+6 = 48: core 0 = 32 + 3*48 = 176 (core 1: 48+32+32+48 = 160, core 2: 176)
    assert n1.synapses_per_core == 176
    # n2: an output row/column covers 2, 3, 3 input rows/columns: 64 per channel (one input channel each);
    # core 0 = 64 + 64 + ch2 rows 0-1 (2*8 + 3*8 = 40) = 168 (core 1: 24 + 64 = 88)
    assert n2.synapses_per_core == 168
    # fan-out: n1 core 0 (ch0 rows 0-3) feeds only group 0 (out ch 0, 1: n2 core 0); core 1 also holds
    # ch1 rows 0-1, read by out ch 2, 3 rows 0-1 (n2 cores 0 and 1): 2; core 2 (ch1 rows 2-5): out rows
    # 1-2 of ch 2 (cores 0, 1) and ch 3 (core 1): 2. n2 is the output: 0.
    assert (n1.fan_out_per_core, n2.fan_out_per_core) == (2, 0)


def dense_graph() -> ProcessGraph:
    """A host vector of 8 -> dense 8 -> 6 whose row r reads inputs r and r + 1 (input 7 unused)."""
    w = np.zeros((6, 8), np.int64)
    for r in range(6):
        w[r, r] = w[r, r + 1] = 1
    return _graph([Process("input", "input", [], (8, 1, 1), attrs={"bits": 8}, static=True),
                   _syn("fc", "input", (6, 1, 1), w, op="dense", graded=True),
                   _neuron("n", "fc", (6, 1, 1))], "n", (8, 1, 1))


@pytest.mark.parametrize("per_word,words", [
    # every core of a dense layer receives the 7 inputs the layer reads (0-6): 7 axons. 4 weights a
    # dense word: core 0 (rows 0-3): dense 7 * ceil(4/4) = 7 words (sparse: its 8 non-zeros, 8 words);
    # words 4 * 3 + 7 + 7 * 2 = 33 (core 1, rows 4-5: 6 + min(7, 4) + 14 = 24)
    (4, 33),
    # 1 weight a dense word: dense 7 * 4 = 28, sparse 8: the sparse encoding, 12 + 8 + 14 = 34
    (1, 34)])
def test_dense_layer_axons_and_encodings(per_word, words):
    chip = dataclasses.replace(load_chip("loihi2"), neurons_per_core=4, dense_weights_per_word=per_word)
    g = map_graph(dense_graph(), chip).groups["n"]
    assert (g.chunk, g.cores, g.axons_per_core, g.words_per_core, g.synapses_per_core) == (4, 2, 7, words, 8)


def dssa_graph() -> ProcessGraph:
    """The smallest DSSA block: S (2, 2, 2) spikes, y = 1x1 conv of S (4 channels: y1, y2 with d = 2,
    N = 4 tokens), A = LIF(y1^T @ S) (4, 2, 2), O = LIF(y2 @ A) (2, 2, 2); one head."""
    w0 = np.eye(2, dtype=np.int64).reshape(2, 2, 1, 1) * 3
    wy = np.array([[1, 2], [3, 1], [1, 1], [2, 3]]).reshape(4, 2, 1, 1)
    dsmm = lambda name, dyn, spk, form, shape: Process(name, "dsmm", [], shape, operands=(dyn, spk),  # noqa: E731
                                                       attrs={"form": form, "heads": 1})
    return _graph([Process("input", "input", [], (2, 2, 2), attrs={"bits": 8}, static=True),
                   _syn("s0", "input", (2, 2, 2), w0, graded=True, **_conv((1, 1), (0, 0))),
                   _neuron("S", "s0", (2, 2, 2)),
                   _syn("y", "S", (4, 2, 2), wy, **_conv((1, 1), (0, 0))),
                   dsmm("m1", "y", "S", "y1T@s", (4, 2, 2)), _neuron("A", "m1", (4, 2, 2)),
                   dsmm("m2", "y", "A", "y2@a", (2, 2, 2)), _neuron("O", "m2", (2, 2, 2))], "O", (2, 2, 2))


def test_smallest_dssa_block():
    # a dsmm holds its dynamic operand in the core: the operand-memory core (loihi2's numbers otherwise)
    chip = dataclasses.replace(load_chip("loihi2-opmem"), neurons_per_core=8)
    m = map_graph(dssa_graph(), chip)
    A, O, y, S = (m.groups[k] for k in ("A", "O", "y", "S"))  # noqa: E741 (DSSA's own names)
    # A (4 tokens x 4 positions): slabs of 8 -> 2 cores of 2 token rows. A core holds y1's column of
    # each of its 2 tokens: 2 * d = 4 entries (4 * 24 bits = 2 words), written through 4 axons, and
    # reads all of S's d x HW = 8 spikes: 12 axons. Words 8 * 3 + 2 + 12 * 2 = 50; synapses 8 * d = 16.
    assert (A.chunk, A.cores, A.axons_per_core, A.words_per_core, A.synapses_per_core) == (8, 2, 12, 50, 16)
    # O (d = 2 rows x 4 positions), 1 core: rows y2[i, :] of N = 4: 8 entries (3 words), A's 4 x 4 = 16
    # spikes: 24 axons; words 8 * 3 + 3 + 24 * 2 = 75; synapses 8 * N = 32
    assert (O.chunk, O.cores, O.axons_per_core, O.words_per_core, O.synapses_per_core) == (8, 1, 24, 75, 32)
    # y (4 channels of 2 x 2), its own group (two readers): 2 cores of 2 channels; 3-bit weights: one
    # row word + 1 header per input channel: 2 * 2 = 4 words, 1 axon: 8 * 3 + 4 + 2 = 30
    assert (y.chunk, y.cores, y.words_per_core, y.axons_per_core) == (8, 2, 30, 1)
    # fan-out: y core 0 holds y1 (read by both A cores), core 1 y2 (read by O): 2; S feeds both y cores
    # and both A cores: 4; A's cores feed O's one core: 1; O is the output: 0
    assert (y.fan_out_per_core, S.fan_out_per_core, A.fan_out_per_core, O.fan_out_per_core) == (2, 4, 1, 0)


def test_binary_spike_chip_refuses_a_graded_value_in_one_line():
    with pytest.raises(MappingError, match=r"loihi1 has binary spikes only: 's0' reads the graded values of 'input'"):
        map_graph(dssa_graph(), load_chip("loihi1"))


def test_limits_name_the_layer():
    with pytest.raises(MappingError, match=r"layer 'n': one compartment has 7 distinct input axons, over the 6"):
        map_graph(dense_graph(), dataclasses.replace(load_chip("loihi2"), max_fan_in=6))
    with pytest.raises(MappingError, match=r"layer 'n1': one compartment needs \d+ words"):
        map_graph(two_convs(), dataclasses.replace(load_chip("loihi2"), memory_words=20))
    with pytest.raises(MappingError, match="fan-out limit"):
        map_graph(two_convs(), dataclasses.replace(load_chip("loihi2"), neurons_per_core=24, max_fan_out=1))


def test_dssa_core_of_part_of_a_row_reads_only_its_columns():
    # 2 compartments per core: A's core holds 2 positions of one token row: y1's column of that token
    # (d = 2 entries, 1 word) and S's spikes at its 2 positions (2 x d = 4): 6 axons, 2 * 3 + 1 + 12 = 19
    A = map_graph(dssa_graph(), dataclasses.replace(load_chip("loihi2"), neurons_per_core=2)).groups["A"]
    assert (A.chunk, A.cores, A.axons_per_core, A.words_per_core) == (2, 8, 6, 19)


def test_fan_out_can_be_left_uncounted():
    chip = dataclasses.replace(load_chip("loihi2"), neurons_per_core=24, conv_word_bits=4, max_fan_out=1)
    m = map_graph(two_convs(), chip, fan_out=False)   # over the fan-out limit of 1, but not counted
    assert [(g.cores, g.fan_out_per_core) for g in m.groups.values()] == [(3, 0), (2, 0)]
