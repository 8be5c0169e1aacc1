import pytest

from lipstream.stream.windows import WindowPlanner, plan_windows


@pytest.mark.parametrize("count", [0, 1, 5, 24, 25, 26, 100])
@pytest.mark.parametrize("size,overlap", [(1, 0), (8, 0), (8, 3), (8, 4), (32, 8), (5, 4)])
def test_every_item_owned_once_in_order(count, size, overlap):
    owned = []
    for items, lo, hi in plan_windows(range(count), size, overlap):
        assert items == list(range(items[0], items[0] + len(items))), "window items must be consecutive"
        assert 0 <= lo < hi <= len(items) <= size
        owned.extend(items[lo:hi])
    assert owned == list(range(count))


def test_context_on_both_sides_in_the_middle():
    windows = list(plan_windows(range(100), 32, 8))
    items, lo, hi = windows[1]
    assert (lo, len(items) - hi) == (4, 4)
    assert items[lo] == 24 and items[hi - 1] == 47


def test_memory_is_bounded_by_window_size():
    planner = WindowPlanner(16, 6)
    for i in range(10_000):
        planner.push(i)
        assert len(planner._held) <= 16 + 1


def test_rejects_bad_sizes():
    with pytest.raises(ValueError):
        WindowPlanner(4, 4)
    with pytest.raises(ValueError):
        WindowPlanner(0, 0)
