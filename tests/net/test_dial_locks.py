"""One dial at a time per address and routes, and no lock kept once nobody needs it."""

from __future__ import annotations

import trio
import trio.testing

from p2pbackup.net.contact import Route
from p2pbackup.net.dialer import DialLocks

LAN = ("192.168.1.2", 7000)
DIRECT = (LAN, Route(*LAN))
RELAYED = (LAN, Route("198.51.100.1", 7000, bytes(20)))


async def test_dials_of_one_key_wait_for_each_other_and_other_keys_do_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    locks, began = DialLocks(), {}

    async def dial(name: str, key: tuple[object, ...], seconds: float) -> None:
        async with locks.hold(key):
            began[name] = trio.current_time()
            await trio.sleep(seconds)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(dial, "lan", DIRECT, 5.0)  # swallowed for 5 s
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(dial, "lan again", DIRECT, 0.1)
        nursery.start_soon(dial, "relay", RELAYED, 0.1)
    assert began == {"lan": 0.0, "relay": 0.0, "lan again": 5.0}
    assert len(locks) == 0  # forgotten once released


async def test_a_cancelled_waiter_leaves_no_lock_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    locks = DialLocks()

    async def hold(seconds: float) -> None:
        async with locks.hold(DIRECT):
            await trio.sleep(seconds)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, 1.0)
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(0.5):
            await hold(0.1)
    assert len(locks) == 0
