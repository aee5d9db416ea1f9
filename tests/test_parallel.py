"""The ordered, bounded thread map used for per-frame I/O."""

import threading
import time

import pytest

from segloop.parallel import ordered_map


@pytest.mark.parametrize("workers", [1, 4])
def test_results_come_back_in_input_order(workers: int) -> None:
    def slow_for_small(i: int) -> int:
        time.sleep(0.001 * (10 - i))  # early items finish last
        return i * i

    assert list(ordered_map(slow_for_small, range(10), workers)) == [i * i for i in range(10)]


def test_no_more_than_the_window_is_in_flight() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def record(i: int) -> int:
        with lock:
            started.append(i)
        return i

    results = ordered_map(record, range(100), workers=2, window=5)
    assert next(results) == 0
    time.sleep(0.05)
    with lock:
        assert len(started) <= 5  # the consumer took one; at most the window was submitted
    assert list(results) == list(range(1, 100))


def test_an_exception_surfaces_at_its_item() -> None:
    def fail_on_three(i: int) -> int:
        if i == 3:
            raise OSError("disk gone")
        return i

    results = ordered_map(fail_on_three, range(6), workers=2)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(OSError, match="disk gone"):
        next(results)
