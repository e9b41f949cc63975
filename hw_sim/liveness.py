"""When a forward pass over a graph may drop a value: the position of its last reader.

The float graph, the fake-quant model and the executor all run a graph node by node in
order, each node reading its sources' (and operands') values. Keeping every value until the
end holds the whole network's activations at once (for Ti at 224 x T = 4, gigabytes per
image); dropping each value after its last reader bounds memory by the live set instead.
"""

from __future__ import annotations

from collections.abc import Iterable


def last_reads(nodes: Iterable[tuple[str, Iterable[str]]], keep: Iterable[str] = ()) -> dict[int, list[str]]:
    """Position in ``nodes`` order -> the values read there for the last time.

    ``nodes``: ``(name, names it reads)`` in run order. Values named in ``keep`` (a graph's
    outputs) are never listed; a value no node reads is not listed either (its producer's
    caller decides).
    """
    last: dict[str, int] = {}
    for i, (_, reads) in enumerate(nodes):
        for s in reads:
            last[s] = i
    kept = set(keep)
    by_pos: dict[int, list[str]] = {}
    for name, i in last.items():
        if name not in kept:
            by_pos.setdefault(i, []).append(name)
    return by_pos
