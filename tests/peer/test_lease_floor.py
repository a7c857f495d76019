"""The owner's lease schedule across restarts: the first renewal after a start comes
when the saved floor says it is due, not a minute after every start."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import trio
import trio.testing

from p2pbackup.base.offload import inline
from p2pbackup.peer.lease_floor import FLOOR_NAME, LeaseFloor, read_floor, write_floor
from p2pbackup.peer.results import RenewResult
from p2pbackup.peer.upkeep import FIRST_RENEWAL_DELAY, Upkeep

LEASE = 90 * 86_400
INTERVAL = 7 * 86_400.0
NOW = 1_800_000_000


class _Catalog:
    def __init__(self, packs: set[bytes]) -> None:
        self.packs = packs

    def pack_ids(self) -> set[bytes]:
        return set(self.packs)


def _upkeep(tmp_path: Path, packs: set[bytes], now: float = NOW) -> Upkeep:
    nothing = cast(Any, None)
    return Upkeep(
        nothing,
        nothing,
        cast(Any, _Catalog(packs)),
        nothing,
        LEASE,
        INTERVAL,
        nothing,
        now=lambda: now,
        run_sync=inline,
        floor_file=tmp_path / FLOOR_NAME,
    )


async def test_an_owner_with_nothing_placed_starts_the_schedule(tmp_path: Path) -> None:
    upkeep = _upkeep(tmp_path, set())
    assert await upkeep._first_wait() == INTERVAL
    assert read_floor(tmp_path / FLOOR_NAME) == LeaseFloor(NOW + LEASE, LEASE)


async def test_a_recent_renewal_puts_the_next_one_off(tmp_path: Path) -> None:
    write_floor(tmp_path / FLOOR_NAME, LeaseFloor(NOW + LEASE - 86_400, LEASE))
    upkeep = _upkeep(tmp_path, {b"p" * 32})
    assert await upkeep._first_wait() == INTERVAL - 86_400


async def test_a_floor_from_the_future_puts_renewals_off_one_interval_at_most(
    tmp_path: Path,
) -> None:
    write_floor(tmp_path / FLOOR_NAME, LeaseFloor(NOW + 10 * LEASE, LEASE))
    upkeep = _upkeep(tmp_path, {b"p" * 32})
    assert await upkeep._first_wait() == INTERVAL


async def test_a_renewal_past_due_comes_soon(tmp_path: Path) -> None:
    write_floor(tmp_path / FLOOR_NAME, LeaseFloor(NOW + LEASE - 30 * 86_400, LEASE))
    upkeep = _upkeep(tmp_path, {b"p" * 32})
    assert await upkeep._first_wait() == FIRST_RENEWAL_DELAY


async def test_no_floor_or_another_lease_period_renews_soon(tmp_path: Path) -> None:
    upkeep = _upkeep(tmp_path, {b"p" * 32})
    assert await upkeep._first_wait() == FIRST_RENEWAL_DELAY
    assert read_floor(tmp_path / FLOOR_NAME) is None
    write_floor(tmp_path / FLOOR_NAME, LeaseFloor(NOW + LEASE, LEASE * 2))
    assert await upkeep._first_wait() == FIRST_RENEWAL_DELAY
    (tmp_path / FLOOR_NAME).write_text("{not json")
    assert await upkeep._first_wait() == FIRST_RENEWAL_DELAY


async def test_only_a_full_renewal_raises_the_floor(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    upkeep = _upkeep(tmp_path, {b"p" * 32, b"q" * 32})
    outcomes = [1, 2]  # packs renewed: the first pass misses one

    async def renew_all(progress: Any = None) -> RenewResult:
        renewed = outcomes.pop(0)
        return RenewResult(2, renewed, renewed * 10, NOW + LEASE + renewed, 0.0)

    upkeep.renew_all = renew_all  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        await nursery.start(upkeep.keep_leases)
        await trio.sleep(FIRST_RENEWAL_DELAY + 1)
        assert read_floor(tmp_path / FLOOR_NAME) is None
        await trio.sleep(INTERVAL)
        assert read_floor(tmp_path / FLOOR_NAME) == LeaseFloor(NOW + LEASE + 2, LEASE)
        nursery.cancel_scope.cancel()
