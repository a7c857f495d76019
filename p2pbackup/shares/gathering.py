"""Whom a pack's fetch asks next, and when a silent holder counts as stalled; sans-IO.

A holder that is gone answers at once (the connection is refused or reset);
a holder that hangs (stopped, wedged, its link dead without a reset) keeps the
connection open and answers nothing, and a fetch that waited for it ran out
its whole timeout, once per pack. Here a request that brought nothing for
`Pace.stall_after()` seconds, a few times what this operation's shares have
taken so far, counts as stalled: another holder is asked in its place, the
stalled one stays in flight, and whichever k shares arrive first rebuild the
pack. The interval grows by the time the bytes on the link with a request take
at the rate measured, but a holder that has sent no byte at all for the bare
interval (`heard`: the transport's count of bytes from it stands still) stalls
all the same: a slow link still brings bytes, a holder that hangs none. A
holder that failed or stalled is remembered (`HolderMemory`) and
asked after every other one by later fetches and placements, so it costs an
operation one stall, not one per pack; a holder that answers again is
forgotten at once.

The driver (`mesh_fetch`) feeds in replies and the time, and asks what to do;
everything here is plain data, so the rules are tested without a network
and run on virtual time in the simulator.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from p2pbackup.net.contact import Contact


@dataclass(frozen=True)
class StallRule:
    """How long a request may bring nothing before another holder is asked.

    `factor` times the slow end (the 90th percentile) of the last `window`
    requests that brought a share, kept between `floor` and `ceiling`; before
    any has, `ceiling`. `remember` is how long a failed or stalled holder
    stays at the back of the queue unless it answers first."""

    floor: float = 1.0
    ceiling: float = 15.0
    factor: float = 4.0
    window: int = 32
    remember: float = 600.0
    # A suspect heard from since (it answered any request of its peer's, first-hand)
    # is trusted again once marked this long ago: one that hung and came back was
    # passed over by placements for the whole `remember`, leaving packs short.
    heard_after: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.ceiling:
            raise ValueError("the stall floor must be positive and at most the ceiling")
        if self.factor < 1 or self.window < 1 or min(self.remember, self.heard_after) < 0:
            raise ValueError("factor and window must be at least 1, remember not negative")


class Pace:
    """How long requests that brought a share took lately, and the stall interval from it."""

    def __init__(self, rule: StallRule) -> None:
        self.rule = rule
        self._recent: deque[float] = deque(maxlen=rule.window)

    @property
    def known(self) -> bool:
        """Whether any request has brought a share yet: until then a stall is only
        noticed at the ceiling."""
        return bool(self._recent)

    def observe(self, duration: float) -> None:
        self._recent.append(max(0.0, duration))

    def stall_after(self) -> float:
        rule = self.rule
        if not self._recent:
            return rule.ceiling
        if len(self._recent) == 1:
            slow = self._recent[0]
        else:
            slow = statistics.quantiles(self._recent, n=10, method="inclusive")[-1]
        return min(rule.ceiling, max(rule.floor, rule.factor * slow))


class HolderMemory:
    """Holders that failed or stalled lately: asked last until they answer again.

    `last_heard` tells when a peer last answered its peer at all (the DHT's book)."""

    def __init__(
        self, rule: StallRule, last_heard: Callable[[bytes], float | None] | None = None
    ) -> None:
        self.rule = rule
        self.last_heard = last_heard
        self._marked: dict[bytes, float] = {}  # node id -> when it last failed or stalled
        self.stalls: dict[bytes, int] = {}  # node id -> stalls counted while not yet marked

    def failed(self, node_id: bytes, now: float) -> None:
        self._marked[node_id] = now

    def stalled(self, node_id: bytes, now: float) -> None:
        if not self.suspect(node_id, now):
            self.stalls[node_id] = self.stalls.get(node_id, 0) + 1
        self._marked[node_id] = now

    def answered(self, node_id: bytes) -> None:
        self._marked.pop(node_id, None)

    def suspect(self, node_id: bytes, now: float) -> bool:
        when = self._marked.get(node_id)
        if when is None:
            return False
        if now - when > self.rule.remember or self._back(node_id, when, now):
            del self._marked[node_id]
            return False
        return True

    def _back(self, node_id: bytes, marked: float, now: float) -> bool:
        if self.last_heard is None or now - marked < self.rule.heard_after:
            return False
        heard = self.last_heard(node_id)
        return heard is not None and heard > marked

    def any_suspect(self, now: float) -> bool:
        return any([self.suspect(node_id, now) for node_id in list(self._marked)])

    def ranked(self, contacts: Iterable[Contact], now: float) -> list[Contact]:
        """`contacts` in their order, the suspect ones moved to the end, those marked
        longest ago first: a holder that failed a while back is likelier to be back than
        one that failed just now."""
        items = list(contacts)
        good = [c for c in items if not self.suspect(c.node_id, now)]
        bad = [c for c in items if self.suspect(c.node_id, now)]
        return good + sorted(bad, key=lambda c: self._marked[c.node_id])


@dataclass
class _Ask:
    contact: Contact
    started: float
    stalled: bool = False
    # Waiting for room on the link (`TransferGate`): not yet running, so not stalling.
    waiting: bool = False
    # What the stall interval adds for the bytes on the link with it.
    extra: Callable[[], float] | None = None
    # The bytes come from its holder so far at the last look (None: not known), and
    # since when that count has stood still.
    heard: int | None = None
    quiet_since: float = 0.0

    def allowed(self, interval: float) -> float:
        return interval if self.extra is None else interval + self.extra()

    @property
    def as_before(self) -> bool:
        """Judged by its start alone, one sum as ever (the simulator's requests are)."""
        return self.extra is None and self.heard is None

    def due(self, interval: float) -> float:
        """When it counts as stalled: once its bytes' time is up, or once its holder has
        sent nothing for an interval, however many bytes it still has to send."""
        by_bytes = self.started + self.allowed(interval)
        return by_bytes if self.heard is None else min(by_bytes, self.quiet_since + interval)


@dataclass
class Gathering:
    """One pack's fetch: which holders to ask now, and when to look again.

    Asks as many holders as shares are missing plus `spare`, counting only
    requests that have not stalled; a stalled request stays open and its
    share still counts if it comes. Healthy holders go first in the order
    offered (nearest first), then suspect ones."""

    memory: HolderMemory
    pace: Pace
    needed: int
    spare: int = 1
    gathered: int = 0
    _queue: list[Contact] = field(default_factory=list)
    _seen: set[bytes] = field(default_factory=set)
    _asked: dict[bytes, _Ask] = field(default_factory=dict)

    def offer(self, contacts: Iterable[Contact]) -> None:
        """More candidates, nearest first; ones already offered are ignored."""
        for contact in contacts:
            if contact.node_id not in self._seen:
                self._seen.add(contact.node_id)
                self._queue.append(contact)

    def to_ask(self, now: float) -> list[Contact]:
        """Holders to ask now; each counts as in flight from `now`."""
        chosen: list[Contact] = []
        want = max(0, self.needed - self.gathered) + self.spare - self.active
        while want > 0 and self._queue and not self.enough:
            ranked = self.memory.ranked(self._queue, now)
            contact = ranked[0]
            self._queue.remove(contact)
            self._asked[contact.node_id] = _Ask(contact, now)
            chosen.append(contact)
            want -= 1
        return chosen

    @property
    def active(self) -> int:
        return sum(1 for ask in self._asked.values() if not ask.stalled)

    @property
    def queue_left(self) -> bool:
        return bool(self._queue)

    def is_open(self, contact: Contact) -> bool:
        return contact.node_id in self._asked

    @property
    def in_flight(self) -> int:
        return len(self._asked)

    @property
    def enough(self) -> bool:
        return self.gathered >= self.needed

    @property
    def exhausted(self) -> bool:
        """Nobody left to ask and nothing on its way."""
        return not self._queue and not self._asked

    def deadline(self) -> float | None:
        """When the first live request counts as stalled, if any is live."""
        interval = self.pace.stall_after()
        running = self._running()
        if all(ask.as_before for ask in running):  # one sum, as `check` makes it
            starts = [ask.started for ask in running]
            return min(starts) + interval if starts else None
        return min(ask.due(interval) for ask in running)

    def _running(self) -> list[_Ask]:
        return [ask for ask in self._asked.values() if not ask.stalled and not ask.waiting]

    def waits(self, contact: Contact) -> None:
        """The request to `contact` waits for room on the link: it cannot stall meanwhile."""
        ask = self._asked.get(contact.node_id)
        if ask is not None:
            ask.waiting = True

    def let_out(self, contact: Contact, now: float, extra: Callable[[], float]) -> None:
        """The request to `contact` is on the link: its stall interval runs from `now` if it
        waited, and adds what `extra` says its bytes take."""
        ask = self._asked.get(contact.node_id)
        if ask is not None:
            if ask.waiting:
                ask.started, ask.waiting, ask.heard = now, False, None
            ask.extra = extra

    def listening(self) -> list[Contact]:
        """The holders of requests on their way whose bytes are worth a look (`heard`)."""
        return [ask.contact for ask in self._running()]

    def heard(self, contact: Contact, count: int | None, now: float) -> None:
        """The bytes come from `contact` so far (None: not known). A count that grew since
        the last look says its holder sends, however slowly; one that stood still for an
        interval, that it may hang, though its share's bytes had time left on a slow link."""
        ask = self._asked.get(contact.node_id)
        if ask is None or ask.waiting or count is None:
            return
        if ask.heard is None or count != ask.heard:
            ask.heard, ask.quiet_since = count, now

    @property
    def any_waiting(self) -> bool:
        return any(ask.waiting for ask in self._asked.values())

    def check(self, now: float) -> list[Contact]:
        """Mark the requests that brought nothing within the stall interval; those holders."""
        interval = self.pace.stall_after()
        # The same sums as `deadline`'s: a clock set to a deadline finds its request late.
        late = [
            a
            for a in self._running()
            if (now - a.started >= interval if a.as_before else now >= a.due(interval))
        ]
        for ask in late:
            ask.stalled = True
            self.memory.stalled(ask.contact.node_id, now)
        return [ask.contact for ask in late]

    def got_share(self, contact: Contact, now: float, *, good: bool) -> None:
        """A share came (`good`: it passed its checks and counts)."""
        ask = self._asked.pop(contact.node_id, None)
        self.memory.answered(contact.node_id)
        if ask is not None:  # a late one too: on a slow link, the interval grows to fit
            self.pace.observe(now - ask.started)
        if good:
            self.gathered += 1

    def got_nothing(self, contact: Contact) -> None:
        """The holder answered, with no share of this pack."""
        self._asked.pop(contact.node_id, None)
        self.memory.answered(contact.node_id)

    def failed(self, contact: Contact, now: float) -> None:
        """The request failed: refused connection, reset, or its full timeout."""
        self._asked.pop(contact.node_id, None)
        self.memory.failed(contact.node_id, now)
