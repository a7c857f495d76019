"""The byte budget of packs in flight: a restore's waits for room for the whole pack,
a backup's lets a pack go while those in flight are under the limit."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from p2pbackup.backup.budget import Budget

MIB = 1 << 20


async def _taken(budget: Budget, sizes: list[int]) -> int:
    """How many of `sizes` are taken before one has to wait."""
    taken = 0
    for size in sizes:
        with trio.move_on_after(1):
            await budget.take(size)
            taken += 1
            continue
        break
    return taken


@pytest.mark.parametrize(
    ("while_room", "expected"),
    [(False, 2), (True, 3)],  # 6 + 6 + 6 MiB against 16: whole packs, or while under
)
async def test_big_packs_against_a_budget(
    while_room: bool, expected: int, autojump_clock: trio.testing.MockClock
) -> None:
    budget = Budget(16 * MIB, while_room=while_room)
    assert await _taken(budget, [6 * MIB] * 4) == expected


async def test_a_pack_bigger_than_the_whole_budget_still_goes() -> None:
    budget = Budget(MIB)
    await budget.take(5 * MIB)
    assert budget.used == 5 * MIB


async def test_a_waiting_pack_goes_once_another_is_given_back(nursery: trio.Nursery) -> None:
    budget = Budget(10 * MIB)
    await budget.take(6 * MIB)
    went = trio.Event()

    async def second() -> None:
        await budget.take(6 * MIB)
        went.set()

    nursery.start_soon(second)
    await trio.testing.wait_all_tasks_blocked()
    assert not went.is_set()
    budget.give(6 * MIB)
    await went.wait()
    assert budget.used == 6 * MIB
