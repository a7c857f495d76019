"""The port mapper against a scripted router, on virtual time."""

from __future__ import annotations

import logging
import random

import pytest
import trio
import trio.testing

from p2pbackup.net.port_mapping import (
    Address,
    Gateway,
    LeaseSchedule,
    MapperConfig,
    PortMapper,
    mappable,
)
from p2pbackup.net.upnp import MappingConflict, UpnpError

LISTEN = ("192.168.10.11", 7400)
WAN = "11.18.2.2"
CONFIG = MapperConfig(lease=100, call_timeout=5, retry_min=10, retry_max=40, stop_timeout=2)


class Router:
    """A router that maps what it is asked, unless told to refuse, hang or forget."""

    protocol = "upnp"

    def __init__(self) -> None:
        self.table: dict[int, Address] = {}
        self.external = WAN
        self.refuse: str | None = None
        self.hang = False
        self.down = False
        self.maps = 0
        self.removed: list[int] = []

    async def _maybe_hang(self) -> None:
        if self.down:
            raise ConnectionRefusedError("connection refused")
        if self.hang:
            await trio.sleep_forever()

    async def external_address(self) -> str:
        await self._maybe_hang()
        return self.external

    async def map(self, internal: Address, external_port: int, lease: int) -> tuple[int, int]:
        await self._maybe_hang()
        self.maps += 1
        if self.refuse is not None:
            raise UpnpError(self.refuse)
        if self.table.get(external_port, internal) != internal:
            raise MappingConflict("ConflictInMappingEntry")
        self.table[external_port] = internal
        return external_port, lease

    async def is_mapped(self, internal: Address, external_port: int) -> bool:
        await self._maybe_hang()
        return self.table.get(external_port) == internal

    async def unmap(self, internal: Address, external_port: int) -> None:
        await self._maybe_hang()
        self.table.pop(external_port, None)
        self.removed.append(external_port)


class Harness:
    def __init__(self, router: Router | None) -> None:
        self.router = router
        self.reports: list[Address | None] = []
        self.discoveries = 0

    async def discover(self) -> Gateway | None:
        self.discoveries += 1
        return self.router

    def mapper(self) -> PortMapper:
        return PortMapper(LISTEN, self.reports.append, random.Random(1), CONFIG, self.discover)


async def test_maps_the_listen_port_and_reports_the_external_address(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    harness = Harness(Router())
    mapper = harness.mapper()
    nursery.start_soon(mapper.run)
    await trio.sleep(1)
    assert harness.reports == [(WAN, 7400)]
    assert mapper.status() == {
        "external": f"{WAN}:7400",
        "protocol": "upnp",
        "lease_expires_in": 99,
    }


async def test_renews_halfway_through_each_lease(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    router = Router()
    harness = Harness(router)
    nursery.start_soon(harness.mapper().run)
    await trio.sleep(CONFIG.lease * 2 + 1)  # mapped at 0, renewed at 50, 100, 150, 200
    assert router.maps == 5
    assert harness.reports == [(WAN, 7400)]  # the same address is told once


async def test_maps_again_when_the_router_forgot_and_reports_a_new_address(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    router = Router()
    harness = Harness(router)
    nursery.start_soon(harness.mapper().run)
    await trio.sleep(1)
    router.table.clear()
    router.external = "11.18.9.9"
    await trio.sleep(CONFIG.lease / 2)
    assert router.table == {7400: LISTEN}
    assert harness.reports == [(WAN, 7400), ("11.18.9.9", 7400)]
    assert "the router forgot the mapping of 11.18.2.2:7400; mapping again" in caplog.text


async def test_a_router_that_rebooted_and_forgot_is_told_so_and_gets_the_same_port(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    router = Router()
    router.table[7400] = ("192.168.10.12", 7400)  # taken: the mapper gets another port
    harness = Harness(router)
    nursery.start_soon(harness.mapper().run)
    await trio.sleep(1)
    [(_, port)] = harness.reports  # type: ignore[misc]
    router.down = True  # rebooting during the renewal
    await trio.sleep(CONFIG.lease / 2)
    assert harness.reports[-1] is None
    router.down = False
    router.table.pop(port)
    await trio.sleep(CONFIG.retry_min)
    assert router.table[port] == LISTEN and harness.reports[-1] == (WAN, port)
    assert f"the router forgot the mapping of {WAN}:{port}; mapping again" in caplog.text


async def test_a_short_lease_is_retried_within_its_renewal_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    router = Router()
    short = MapperConfig(lease=4, call_timeout=1, retry_min=30, retry_max=60, stop_timeout=1)
    reports: list[Address | None] = []
    mapper = PortMapper(LISTEN, reports.append, random.Random(1), short, lambda: _found(router))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(mapper.run)
        await trio.sleep(1)
        router.down = True
        await trio.sleep(2)  # the renewal at 2 s fails
        router.down = False
        await trio.sleep(2.5)  # retried 2 s later, not 30 s
        assert reports == [(WAN, 7400), None, (WAN, 7400)]
        nursery.cancel_scope.cancel()


async def _found(router: Router) -> Gateway:
    return router


async def test_another_external_port_when_the_listen_port_is_taken(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    router = Router()
    router.table[7400] = ("192.168.10.12", 7400)
    harness = Harness(router)
    nursery.start_soon(harness.mapper().run)
    await trio.sleep(1)
    [(host, port)] = harness.reports  # type: ignore[misc]
    assert host == WAN and port != 7400 and router.table[port] == LISTEN


async def test_a_refusal_is_one_line_then_a_backed_off_retry(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="p2pbackup.port_mapping")
    router = Router()
    harness = Harness(router)
    nursery.start_soon(harness.mapper().run)
    await trio.sleep(1)
    router.refuse = "Action not authorized"
    await trio.sleep(CONFIG.lease / 2)  # the renewal is refused
    assert harness.reports == [(WAN, 7400), None]
    refusals = [r for r in caplog.records if "Action not authorized" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING
    assert refusals[0].getMessage() == (
        "port mapping of 192.168.10.11:7400 failed (upnp): Action not authorized; "
        "trying again in 10s"
    )
    assert refusals[0].exc_info is None
    maps = router.maps
    await trio.sleep(10 + 20 + 1)  # retried after 10 s, then 20 s
    assert router.maps == maps + 2
    router.refuse = None
    await trio.sleep(40)
    assert harness.reports[-1] == (WAN, 7400)


async def test_no_router_is_said_once_and_looked_for_again(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="p2pbackup.port_mapping")
    harness = Harness(None)
    nursery.start_soon(harness.mapper().run)
    await trio.sleep(10 + 20 + 40 + 1)
    assert harness.discoveries == 4 and harness.reports == []
    assert caplog.text.count("no router offers port mapping") == 1


async def test_a_router_that_hangs_is_given_up_and_found_again(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    router = Router()
    router.hang = True
    harness = Harness(router)
    nursery.start_soon(harness.mapper().run)
    await trio.sleep(CONFIG.call_timeout + 1)
    assert "no answer in time" in caplog.text
    router.hang = False
    await trio.sleep(CONFIG.retry_min)
    assert harness.discoveries == 2 and harness.reports == [(WAN, 7400)]


@pytest.mark.parametrize("renewal_failed", [False, True])
async def test_a_clean_stop_removes_the_mapping(
    renewal_failed: bool, autojump_clock: trio.testing.MockClock
) -> None:
    router = Router()
    harness = Harness(router)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.mapper().run)
        await trio.sleep(1)
        if renewal_failed:
            # A router restarted from its lease file holds the mapping again, while the
            # mapper, whose renewal failed meanwhile, counts it lost and the router unknown.
            router.down = True
            await trio.sleep(CONFIG.lease / 2)
            assert harness.reports[-1] is None and router.table == {7400: LISTEN}
            router.down = False
        nursery.cancel_scope.cancel()
    assert router.removed == [7400] and router.table == {}


async def test_a_stop_does_not_wait_for_a_router_that_hangs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    router = Router()
    harness = Harness(router)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.mapper().run)
        await trio.sleep(1)
        router.hang = True
        nursery.cancel_scope.cancel()
        stopping = trio.current_time()
    assert trio.current_time() - stopping == pytest.approx(CONFIG.stop_timeout)
    assert router.removed == []


def test_the_schedule_renews_halfway_and_backs_off_doubling() -> None:
    schedule = LeaseSchedule(CONFIG)
    assert schedule.renew_in(100) == 50
    assert schedule.renew_in(0) == CONFIG.lease / 2  # a permanent mapping is still checked
    assert schedule.renew_in(1) == 1.0
    assert [schedule.retry_in() for _ in range(4)] == [10, 20, 40, 40]
    schedule.renew_in(100)
    assert schedule.retry_in() == 10


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", False),
        ("::1", False),
        ("192.168.10.11", True),
        ("0.0.0.0", True),
        ("::", True),
        ("2001:db8::1", False),
        ("peer.example", False),
    ],
)
def test_only_ipv4_and_wildcard_non_loopback_addresses_are_mapped(
    host: str, expected: bool
) -> None:
    assert mappable((host, 7400)) is expected
