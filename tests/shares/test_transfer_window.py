"""The owner's transfer window: it opens on a fast link, closes to what a slow one
carries, always lets one put out, and measures the link a stall interval needs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.net.framing import SLOWEST_RATE
from p2pbackup.shares.transfer_window import MIB, TransferGate, TransferWindow

SHARE = 2 * MIB
Took = Callable[[int, int], float]


def test_a_fast_link_opens_the_window_to_its_most() -> None:
    window = TransferWindow()
    now = 0.0
    for _ in range(200):
        while window.admits(SHARE):
            window.let_out(SHARE, now)
        now += 0.01
        window.came_back(SHARE, 0.01, True, now)
    assert window.allowed == window.most


def test_a_full_link_closes_the_window_to_about_two_shares_at_a_time() -> None:
    window = TransferWindow(first=16 * MIB)
    now = 0.0
    for _ in range(30):
        count = 0
        while window.admits(SHARE):
            window.let_out(SHARE, now)
            count += 1
        now += 8.0 * count  # 2 MiB in 8 s alone: together, each takes as long as all
        for _ in range(count):
            window.came_back(SHARE, 8.0 * count, True, now)
    assert window.allowed <= 3 * SHARE


def _nine_holders(window: TransferWindow, turns: int, step: float, took: Took) -> None:
    """Turns of as many shares as the window lets out, one per holder of nine at most,
    `step` seconds apart; `took(turn, i)` says how long share i of a turn took."""
    now = 0.0
    for turn in range(turns):
        count = 0
        while window.admits(SHARE) and count < 9:
            window.let_out(SHARE, now)
            count += 1
        now += step
        for i in range(count):
            window.came_back(SHARE, took(turn, i), True, now)


def test_a_lossy_path_keeps_the_window_open() -> None:
    window = TransferWindow()
    # Each connection held back by its own losses: 8 s however many are out.
    _nine_holders(window, 30, 8.0, lambda turn, i: 8.0)
    assert window.allowed >= 9 * SHARE


def test_one_slow_round_shrinks_the_window_once() -> None:
    window = TransferWindow(first=16 * MIB)
    window.let_out(SHARE, 0.0)
    window.came_back(SHARE, 1.0, True, 1.0)  # alone: 2 MiB a second
    grown = window.allowed
    for _ in range(8):
        window.let_out(SHARE, 1.0)
    for _ in range(8):
        window.came_back(SHARE, 10.0, True, 11.0)
    assert window.allowed == pytest.approx(grown * 2 / 3)


def test_a_refusal_at_once_leaves_the_window_as_it_was() -> None:
    window = TransferWindow()
    window.let_out(SHARE, 0.0)
    window.came_back(SHARE, 0.01, False, 0.01)
    assert window.allowed == window.first
    assert window.out == 0


def test_a_transfer_called_off_leaves_the_window_as_it_was() -> None:
    window = TransferWindow()
    window.let_out(SHARE, 0.0)
    window.gave_up(SHARE, 30.0)
    assert window.allowed == window.first
    assert window.out == 0


def test_the_rate_is_what_was_stored_per_second_of_sending() -> None:
    window = TransferWindow()
    assert window.rate() is None
    # Before any share came back: what the bytes take at the slowest rate a frame may.
    assert window.transfer_seconds(SHARE) == pytest.approx(SHARE / SLOWEST_RATE)
    window.let_out(SHARE, 100.0)
    window.came_back(SHARE, 4.0, True, 104.0)
    assert window.rate() == pytest.approx(SHARE / 4.0)
    window.let_out(SHARE, 200.0)  # idle between: not counted
    window.came_back(SHARE, 4.0, True, 204.0)
    assert window.rate() == pytest.approx(SHARE / 4.0)
    assert window.transfer_seconds(2 * SHARE) == pytest.approx(8.0)


def test_a_transfer_is_never_given_longer_than_at_the_slowest_rate() -> None:
    window = TransferWindow()
    window.let_out(100, 0.0)
    window.came_back(100, 1.0, True, 1.0)  # a tiny put: 100 bytes a second
    assert window.transfer_seconds(SHARE) == pytest.approx(SHARE / SLOWEST_RATE)


@given(
    st.lists(
        st.tuples(st.integers(1, 8 * MIB), st.floats(0, 60), st.booleans(), st.floats(0, 10)),
        max_size=60,
    )
)
def test_the_window_stays_within_its_bounds(puts: list[tuple[int, float, bool, float]]) -> None:
    window = TransferWindow()
    now, out = 0.0, []
    for size, seconds, stored, gap in puts:
        now += gap
        if window.admits(size):
            window.let_out(size, now)
            out.append(size)
        elif out:
            window.came_back(out.pop(0), seconds, stored, now)
        assert window.least <= window.allowed <= window.most
        assert window.out == sum(out)
        assert window.admits(size) or out


async def test_puts_wait_at_the_gate_for_room(autojump_clock: trio.testing.MockClock) -> None:
    gate = TransferGate(TransferWindow(first=3 * MIB))
    order: list[str] = []

    async def put(name: str, seconds: float) -> None:
        async with gate.slot(SHARE) as ticket:
            order.append(f"{name} out")
            await trio.sleep(seconds)
            ticket.through = True
        order.append(f"{name} back")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(put, "a", 1.0)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(put, "b", 1.0)
    assert order == ["a out", "a back", "b out", "b back"]
    assert gate.window.out == 0
    assert gate.window.allowed == 3 * MIB + 2 * SHARE


def test_a_holder_slow_on_its_own_does_not_close_the_window() -> None:
    window = TransferWindow()
    # One share in nine goes to a holder behind a relay.
    _nine_holders(window, 60, 0.5, lambda turn, i: 6.0 if turn % 9 == i % 9 else 0.05)
    assert window.allowed >= 9 * SHARE


async def test_a_transfer_slow_alone_stops_holding_the_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = TransferGate(TransferWindow(first=SHARE, least=SHARE, most=SHARE))

    async def put(seconds: float, started: list[float] | None = None) -> None:
        async with gate.slot(SHARE) as ticket:
            if started is not None:
                started.append(trio.current_time())
            await trio.sleep(seconds)
            ticket.through = True

    for _ in range(6):  # shares go fast: the link has room
        await put(0.1)
    began = trio.current_time()
    started: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(put, 60.0)  # to a holder behind a slow relay
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(put, 0.1, started)
    assert started[0] - began < 10.0, "the other share waited for the slow one"
