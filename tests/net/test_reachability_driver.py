"""The reachability driver: whom it asks, what it records, and what it advertises."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, cast

import trio
import trio.testing

from p2pbackup.dht.config import DhtConfig
from p2pbackup.dht.dial_me_back import DialledBack, DialMeBack
from p2pbackup.dht.node import DhtNode
from p2pbackup.dht.reachability_check import ReachabilityCheck
from p2pbackup.errors import PeerUnreachable
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.reachability import RECHECK, RETRY_FAILED, Reachability
from p2pbackup.net.transport import Address, Remote, Reply
from p2pbackup.wire.messages import Message


@dataclass
class FakeTransport:
    answers: dict[bytes, DialledBack | None]
    asked: list[tuple[bytes, str]] = field(default_factory=list)

    async def request(
        self, target: Any, message: Message, timeout: float, *, dialled: bool = False
    ) -> Reply:
        assert isinstance(target, Contact) and isinstance(message, DialMeBack)
        self.asked.append((target.node_id, message.address))
        answer = self.answers[target.node_id]
        if answer is None:
            raise PeerUnreachable("gone")
        return Reply(Remote(target.node_id, bytes(32), target.address), answer)


@dataclass
class FakeDht:
    transport: FakeTransport
    table: list[Contact]
    config: DhtConfig = field(default_factory=DhtConfig)
    nursery: trio.Nursery | None = None  # none: nobody is told of a change

    def block_of(self, contact: Contact) -> str:
        return contact.host.rsplit(".", 1)[0]  # a /24, near enough for a test


def _mesh(
    answers: list[DialledBack | None], hosts: list[str] | None = None
) -> tuple[ReachabilityCheck, FakeTransport, list[tuple[Address, tuple[Route, ...]]]]:
    ids = [bytes([i + 1]) * 20 for i in range(len(answers))]
    hosts = hosts or [f"198.51.{100 + i}.7" for i in range(len(answers))]
    transport = FakeTransport(dict(zip(ids, answers, strict=True)))
    table = [Contact(i, h, 7000) for i, h in zip(ids, hosts, strict=True)]
    state = Reachability(("203.0.113.5", 7000))
    published: list[tuple[Address, tuple[Route, ...]]] = []
    check = ReachabilityCheck(
        cast(DhtNode, FakeDht(transport, table)),
        state,
        lambda main, routes: published.append((main, routes)),
        random.Random(1),
    )
    return check, transport, published


async def test_two_of_three_checkers_confirm_an_address() -> None:
    ok, no = DialledBack(True, True), DialledBack(False, True, "cannot connect")
    check, transport, _ = _mesh([ok, no, ok])
    assert await check.check_due()
    assert len(transport.asked) == 3 and {a for _, a in transport.asked} == {"203.0.113.5:7000"}
    assert check.state.state(0.0) == "public"


async def test_one_block_is_asked_once_however_many_peers_it_holds() -> None:
    ok = DialledBack(True, True)
    check, transport, _ = _mesh([ok] * 5, ["198.51.100.7"] * 4 + ["192.0.2.1"])
    await check.check_due()
    assert len(transport.asked) == 2  # two blocks: two checkers, both must agree


async def test_nobody_to_ask_means_ask_again_soon_and_refusals_wait_for_the_next_round() -> None:
    check, transport, _ = _mesh([None, None])
    assert not await check.check_due()  # nobody answered: not checked
    assert check.state.due(0.0)
    refused = DialledBack(False, False, "only the address your connection comes from")
    check, transport, _ = _mesh([refused, refused])
    assert await check.check_due()
    assert check.state.state(0.0) == "unknown" and "not checked: only" in check.state.detail(0.0)
    assert await check.check_due() and len(transport.asked) == 2  # not asked again yet


def test_a_candidate_every_checker_refused_is_asked_again_soon_then_less_often() -> None:
    """A refusal may pass (a checker busy, or one that dialled the address too often):
    the peer stayed relayed for the whole 30 min recheck after one."""
    state = Reachability(("0.0.0.0", 7000), advertised=[("203.0.113.5", 7000)], interfaces=())
    candidate = ("203.0.113.5", 7000)
    now, waits = 0.0, []
    for _ in range(9):
        state.failed(candidate, "not checked: dialled too often", now)
        due = state.next_due(now)
        waits.append(due - now)
        assert not state.due(due - 0.5) and state.due(due) == [candidate]
        now = due
    assert waits[:4] == [RETRY_FAILED, 2 * RETRY_FAILED, 4 * RETRY_FAILED, 8 * RETRY_FAILED]
    assert waits[-1] == RECHECK  # at most the usual recheck
    state.checked(candidate, 2, 2, now)  # it passed in the end: the usual rhythm again
    assert state.next_due(now) == now + RECHECK


async def test_observed_addresses_count_from_two_blocks_and_never_from_joiners() -> None:
    check, _, _ = _mesh([])
    woken: list[int] = []
    check.state.on_change = lambda: woken.append(1)

    def remote(far: str, standing: str = "member") -> Remote:
        return Remote(
            bytes(20), bytes(32), None, observed=("198.18.0.9", 1), far=(far, 9), standing=standing
        )

    check.heard(remote("198.51.100.7", "joiner"))
    check.heard(remote("192.0.2.1", "joiner"))
    check.heard(remote("198.51.100.7"))
    check.heard(remote("198.51.100.8"))  # the same block
    assert check.state.tally.hosts_seen(0.0) == [] and woken == []
    check.heard(remote("192.0.2.1"))
    assert check.state.tally.hosts_seen(0.0) == ["198.18.0.9"] and woken == [1]


async def test_a_new_relay_is_advertised_at_once() -> None:
    check, _, published = _mesh([DialledBack(False, True, "cannot connect")] * 2)
    for block in ("192.0.2.1", "198.51.100.7"):
        check.state.observed("198.18.0.9", block, trio.current_time())
    async with trio.open_nursery() as nursery:
        await nursery.start(check.run)
        await trio.testing.wait_all_tasks_blocked()
        assert check.state.state(trio.current_time()) == "unknown"
        relay = Route("192.0.2.50", 7000, bytes(range(20)))
        check.state.set_relays([relay])  # as the relay client does when one takes us
        await trio.testing.wait_all_tasks_blocked()
        assert published[-1] == (("198.18.0.9", 7000), (relay,))
        nursery.cancel_scope.cancel()


async def test_a_peer_on_a_lan_only_wants_relays_soon_after_it_meets_a_peer_outside(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Its LAN address is never checked, so nothing else wakes it: it looks again after
    1 s, 2 s, 4 s, then every `UNSETTLED`, not only every `UNSETTLED` from the start."""
    transport = FakeTransport({})
    dht = FakeDht(transport, [])
    check = ReachabilityCheck(
        cast(DhtNode, dht),
        Reachability(("192.168.1.5", 7000)),
        lambda main, routes: None,
        random.Random(1),
    )
    wanted: list[float] = []
    check.on_relays_needed = lambda needed: wanted.append(trio.current_time()) if needed else None
    async with trio.open_nursery() as nursery:
        await nursery.start(check.run)
        await trio.sleep(0.5)
        dht.table.append(Contact(bytes(20), "198.51.100.7", 7000))  # met a peer outside
        while not wanted:
            await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert wanted[0] <= 1.5  # at the first look again, 1 s in; was 5 s
    assert transport.asked == []  # a LAN address is for the LAN: nobody was asked


async def test_an_advertised_name_is_resolved_by_the_asker_and_checked_by_address() -> None:
    ok = DialledBack(True, True)
    check, transport, _ = _mesh([ok, ok])
    check.state.advertised = (("localhost", 7000),)  # from /etc/hosts: no query leaves
    await check.check_due()
    assert {address for _, address in transport.asked} == {"127.0.0.1:7000"}
    assert check.state.confirmed(0.0) == [("localhost", 7000)]
