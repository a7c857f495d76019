"""Keeping this peer's advertised addresses true: ask others to dial them back.

The driver around `net.reachability.Reachability`: it feeds the state what
handshakes say they see us at, asks a few peers of different address blocks
to dial each due candidate back (`DialMeBack`), records what they found, and
tells the transport what to advertise (`advertise(main, routes)`). Candidates
are checked when they appear (a new mapping, observed address or relay) and
again on a schedule. Names (`--advertise peer.example.org:7000`) are
resolved here, when checked: a checker dials only IP addresses.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable

import trio

from p2pbackup.dht.dial_me_back import PROBE_TIMEOUT, DialledBack, DialMeBack
from p2pbackup.dht.messages import Announce
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import Contact, Route, format_address
from p2pbackup.net.interfaces import kind_of
from p2pbackup.net.reachability import ROUTE_ONLY, Reachability
from p2pbackup.net.transport import Address, Remote

log = logging.getLogger("p2pbackup.reachability")

CHECKERS = 3  # peers of different blocks asked about each candidate
RETRY_FIRST, RETRY_MOST = 1.0, 60.0  # while no peer can be asked
RESOLVE_TIMEOUT = 5.0
UNSETTLED = 5.0  # how often a peer reachable nowhere yet looks again
ANNOUNCE_EVERY = 10.0  # how often peers new to the table are told where to reach us
# When what we advertise changes, the peers of the table told so, and how many at once.
ANNOUNCED, ANNOUNCING = 64, 8

Advertise = Callable[[Address, tuple[Route, ...]], None]


class ReachabilityCheck:
    def __init__(
        self,
        dht: DhtNode,
        state: Reachability,
        advertise: Advertise,
        rng: random.Random,
        *,
        checkers: int = CHECKERS,
        bound: Callable[[], Address] | None = None,
    ) -> None:
        self.dht = dht
        self.state = state
        self.advertise = advertise
        self.rng = rng
        self.checkers = checkers
        self.bound = bound
        self._wake = trio.Event()
        self._retry = RETRY_FIRST
        self._unsettled = RETRY_FIRST  # then doubled, up to `UNSETTLED`
        self._published: tuple[Address, tuple[Route, ...]] | None = None
        self._told: set[bytes] = set()  # peers told of what we advertise now
        # Told after each round whether nothing could be confirmed though something was
        # checked: a peer nobody can dial then holds relay reservations (decision 0040).
        self.on_relays_needed: Callable[[bool], None] | None = None
        state.on_change = self.poke

    def poke(self) -> None:
        """The candidates changed: check and publish again soon."""
        self._wake.set()

    def heard(self, remote: Remote) -> None:
        """A handshake finished: tally where the remote says it sees us."""
        if remote.observed is None or remote.far is None or remote.standing == "joiner":
            return
        reporter = self.dht.block_of(Contact(remote.node_id, *remote.far))
        self.state.observed(remote.observed[0], reporter, trio.current_time())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check and publish until cancelled; what to advertise is set before `started`."""
        if self.bound is not None:
            self.state.bound = self.bound()
        self._publish()
        task_status.started()
        while True:
            self._wake = trio.Event()
            checked = await self.check_due()
            self._publish()
            with trio.move_on_after(min(self._next_delay(checked), ANNOUNCE_EVERY)):
                await self._wake.wait()

    def _next_delay(self, checked: bool) -> float:
        if not checked:  # nobody to ask yet: soon, then less and less often
            delay, self._retry = self._retry, min(self._retry * 2, RETRY_MOST)
            return delay
        self._retry = RETRY_FIRST
        now = trio.current_time()
        delay = max(1.0, self.state.next_due(now) - now)
        if not self.state.confirmed(now) and not self.state.relays:
            # Whether relays are needed may change meanwhile: a peer with LAN addresses
            # only needs them once it knows a peer outside, which a joining peer does
            # within a second or two; it waited the whole `UNSETTLED` for them.
            delay = min(delay, self._unsettled)
            self._unsettled = min(self._unsettled * 2, UNSETTLED)
        else:
            self._unsettled = RETRY_FIRST
        return delay

    def _publish(self) -> None:
        now = trio.current_time()
        if self.on_relays_needed is not None:
            self.on_relays_needed(self._needs_relays(now))
        advert = (self.state.main_address(now), self.state.routes(now))
        if advert != self._published:
            self._published = advert
            log.info(
                "advertising %s%s (%s)",
                format_address(advert[0]),
                "".join(f", {route}" for route in advert[1] if route.address != advert[0]),
                self.state.state(now),
            )
            self.advertise(*advert)
            self._told.clear()
        untold = [c for c in self.dht.table if c.node_id not in self._told][:ANNOUNCED]
        if untold and self.dht.nursery is not None and self._published[1]:
            self._told.update(c.node_id for c in untold)
            me = Contact(self.dht.node_id, *advert[0], advert[1])
            self.dht.nursery.start_soon(self._announce, me, untold)

    def _needs_relays(self, now: float) -> bool:
        """Nothing confirmed, and either a checked address failed, or this peer has only
        LAN addresses while it knows peers outside any LAN, who cannot dial those."""
        state = self.state
        if state.confirmed(now):
            return False
        if state.unconfirmed(now):
            return True
        outside = [c for c in state.candidates(now) if kind_of(c[0]) not in ROUTE_ONLY]
        return not outside and any(kind_of(c.host) not in ROUTE_ONLY for c in self.dht.table)

    async def _announce(self, contact: Contact, peers: list[Contact]) -> None:
        """Tell the peers we know where to reach us now: they may have met us at an address
        we no longer advertise, and would not learn the new one before meeting us again.
        Each is told once per change of what we advertise (only when it names routes)."""
        limiter = trio.CapacityLimiter(ANNOUNCING)
        timeout = self.dht.config.rpc_timeout

        async def tell(peer: Contact) -> None:
            async with limiter:
                with contextlib.suppress(P2PBackupError):
                    await self.dht.transport.request(peer, Announce(contact), timeout)

        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(tell, peer)

    async def check_due(self) -> bool:
        """Check every due candidate; False when some could not be, for want of peers."""
        due = self.state.due(trio.current_time())
        if not due:
            return True
        checkers = self._pick_checkers()
        if not checkers:
            return False
        done = True
        for candidate in due:  # one at a time: a checker takes one check per asker
            done = await self._check(candidate, checkers) and done
        return done

    def _pick_checkers(self) -> list[Contact]:
        """Up to `checkers` peers of the table, each of another address block."""
        by_block: dict[str, list[Contact]] = {}
        for contact in self.dht.table:
            by_block.setdefault(self.dht.block_of(contact), []).append(contact)
        blocks = sorted(by_block)
        self.rng.shuffle(blocks)
        return [self.rng.choice(by_block[block]) for block in blocks[: self.checkers]]

    async def _check(self, candidate: Address, checkers: list[Contact]) -> bool:
        target = await self._resolve(candidate)
        now = trio.current_time()
        if target is None:
            self.state.failed(candidate, f"{candidate[0]} does not resolve", now)
            return True
        answers: list[DialledBack] = []

        async def ask(contact: Contact) -> None:
            timeout = PROBE_TIMEOUT + self.dht.config.rpc_timeout
            try:
                reply = await self.dht.transport.request(
                    contact, DialMeBack(format_address(target)), timeout
                )
            except P2PBackupError as exc:
                log.debug("dial-back check by %s failed: %s", contact, exc)
                return
            if isinstance(reply.message, DialledBack):
                answers.append(reply.message)

        async with trio.open_nursery() as nursery:
            for contact in checkers:
                nursery.start_soon(ask, contact)
        tried = [a for a in answers if a.tried]
        if not tried:
            if not answers:
                return False  # nobody answered: ask again soon
            # Every checker refused: the address is not one it may dial for us, or it
            # is busy or dialled it too often lately. Asked again in a while, then less
            # and less often (`Reachability.failed`).
            self.state.failed(candidate, f"not checked: {answers[0].reason}", now)
            return True
        confirmations = sum(1 for a in tried if a.ok)
        why = next((a.reason for a in tried if not a.ok), "")
        self.state.checked(candidate, confirmations, len(tried), trio.current_time(), why)
        result = self.state.results[candidate]
        if result.confirmed:
            where = format_address(candidate)
            log.info("%s: %d of %d peers could dial it", where, result.confirmations, result.asked)
        else:
            log.warning("%s is not reachable: %s", format_address(candidate), result.reason)
        return True

    async def _resolve(self, candidate: Address) -> Address | None:
        """An IP address for `candidate` (a name is looked up now); None if none."""
        host, port = candidate
        if kind_of(host) != "name":
            return candidate
        # The family our listener takes: a name may resolve to both.
        family = trio.socket.AF_INET6 if ":" in self.state.bound[0] else trio.socket.AF_INET
        with trio.move_on_after(RESOLVE_TIMEOUT):
            try:
                found = await trio.socket.getaddrinfo(
                    host, port, family, type=trio.socket.SOCK_STREAM
                )
            except OSError as exc:
                log.warning("cannot resolve %s: %s", host, exc)
                return None
            for *_, sockaddr in found:
                return (str(sockaddr[0]), port)
        return None
