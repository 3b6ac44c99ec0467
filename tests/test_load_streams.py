"""Reader plans (load/streams.py): every position of the range read once across readers, contiguous, equal when asked."""
from __future__ import annotations

import numpy as np
import pytest

from genco_data.load.streams import Unit, memory_units, reader_plan, reader_rows


def positions(units, plan) -> list[int]:
    start = np.cumsum([0] + [u.rows for u in units])
    index = {(u.file, u.index): k for k, u in enumerate(units)}
    return [int(start[index[(u.file, u.index)]]) + i for u, a, b in plan for i in range(a, b)]


@pytest.mark.parametrize("G", [1, 2, 3, 7])
@pytest.mark.parametrize("rows", [None, (0, 50), (13, 101), (90, 90)])
@pytest.mark.parametrize("equal", [False, True])
def test_every_position_once_and_each_reader_contiguous(G, rows, equal):
    units = [Unit(f, g, n) for f, g, n in ((0, 0, 17), (0, 1, 20), (1, 0, 5), (2, 0, 40), (2, 1, 19))]
    lo, hi = rows or (0, 101)
    got = [positions(units, reader_plan(units, g, G, rows=rows, equal=equal)) for g in range(G)]
    flat = [p for part in got for p in part]
    n = hi - lo
    if equal:
        assert [len(p) for p in got] == [n // G] * G == reader_rows(units, G, rows=rows, equal=True)
        assert flat == list(range(lo, lo + G * (n // G)))
    else:
        assert flat == list(range(lo, hi)) and max(map(len, got)) - min(map(len, got)) <= 1
        assert [len(p) for p in got] == reader_rows(units, G, rows=rows)
    for g in range(G):  # skip leaves out the first rows of every reader's range, nothing else
        skipped = positions(units, reader_plan(units, g, G, rows=rows, equal=equal, skip=3))
        assert skipped == got[g][3:]


def test_a_shuffled_order_is_a_permutation_of_whole_units():
    units = memory_units(1000, 64)
    order = np.random.default_rng(0).permutation(len(units))
    plans = [reader_plan(units, g, 4, order=order) for g in range(4)]
    seen = sorted(u.index + i for plan in plans for u, a, b in plan for i in range(a, b))
    assert seen == list(range(1000))
    assert [u.index for u, _, _ in plans[0]][:2] == [units[order[0]].index, units[order[1]].index]
