"""What this peer has seen first-hand of other peers, sans-IO.

Hearsay (contacts named in lookup answers, the address a remote says it
listens on) is cheap to forge; what a peer saw itself is not: it dialled an
address and the peer holding the claimed id answered there. The book keeps,
per id, the address it answered at, when it first did and when it last did,
and whether it failed an audit. From that come two facts the mesh logic
relies on: an address is *verified* once the id answered there, and a peer is
*vetted* once it has answered for a whole vetting period without failing an
audit (as Storj vets new nodes before trusting them with much data).
Times are passed in; the book never reads a clock. A restart keeps the book
(`to_plain`, `load_plain`): it must not forget whom it vetted for days, and it
rebuilds its routing table from the book (`recent`) rather than from strangers'
hearsay (decision 0064).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from p2pbackup.errors import WireError
from p2pbackup.net.contact import MAX_ROUTES, Contact, Route

DEFAULT_CAPACITY = 8192  # ids remembered; the least recently heard go first


@dataclass(slots=True)
class Acquaintance:
    address: tuple[str, int]
    first_seen: float  # first answer at `address` (or since the last failed audit)
    last_seen: float
    routes: tuple[Route, ...] = ()  # the routes it named when it last answered
    # The contact it last answered as, kept unsaved: the routing table mostly holds this
    # very object, and an identity spares reading the address (a cold read per contact).
    contact: Contact | None = None


class PeerBook:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._known: OrderedDict[bytes, Acquaintance] = OrderedDict()

    def __len__(self) -> int:
        return len(self._known)

    def answered(self, contact: Contact, now: float) -> None:
        """We dialled `contact.address` and the peer proved `contact.node_id` there."""
        known = self._known.get(contact.node_id)
        if known is None or known.address != contact.address:
            # A new address starts the record afresh: vetting is of an id *at* an address.
            known = Acquaintance(contact.address, now, now)
            self._known[contact.node_id] = known
        known.last_seen = now
        known.contact = contact
        if contact.routes:
            known.routes = contact.routes
        self._known.move_to_end(contact.node_id)
        while len(self._known) > self.capacity:
            self._known.popitem(last=False)

    def failed_audit(self, node_id: bytes, now: float) -> None:
        """It could not prove a share it claimed: vetting starts over."""
        known = self._known.get(node_id)
        if known is not None:
            known.first_seen = now

    def verified(self, contact: Contact) -> bool:
        """Did this id answer us at this very address?"""
        known = self._known.get(contact.node_id)  # asked for every contact handed out: inline
        return known is not None and (
            known.contact is contact or known.address == (contact.host, contact.port)
        )

    def unverified(self, contacts: Iterable[Contact]) -> list[Contact]:
        """Those of `contacts` that never answered us at their address: `verified` for a
        whole reply's worth at once, as every FIND_NODE answered asks it of twenty."""
        get = self._known.get
        return [
            c
            for c in contacts
            if (seen := get(c.node_id)) is None
            or (seen.contact is not c and seen.address != (c.host, c.port))
        ]

    def last_seen(self, node_id: bytes) -> float | None:
        """When it last answered us, first-hand; None if never (or forgotten)."""
        known = self._known.get(node_id)
        return known.last_seen if known is not None else None

    def known_since(self, node_id: bytes) -> float | None:
        known = self._known.get(node_id)
        return known.first_seen if known is not None else None

    def vetted(self, node_id: bytes, now: float, period: float) -> bool:
        """Answered us for at least `period` seconds, with no failed audit meanwhile."""
        since = self.known_since(node_id)
        return since is not None and now - since >= period

    def recent(
        self, wanted: Callable[[bytes], bool] | None = None
    ) -> Iterator[tuple[Contact, float]]:
        """Each acquaintance as a contact, with when it last answered, most recent first;
        with `wanted`, only those whose id it accepts (a contact is made only for them)."""
        for node_id in reversed(self._known):
            if wanted is not None and not wanted(node_id):
                continue
            known = self._known[node_id]
            yield Contact(node_id, *known.address, known.routes), known.last_seen

    # ---- across restarts -------------------------------------------------

    def to_plain(self, shift: float) -> list[list[Any]]:
        """Each acquaintance, least recently heard first, its times plus `shift` (the
        caller's clock to wall-clock time, so they mean something after a restart),
        then its routes."""
        return [
            [
                node_id,
                known.address[0],
                known.address[1],
                known.first_seen + shift,
                known.last_seen + shift,
                [str(route) for route in known.routes],
            ]
            for node_id, known in self._known.items()
        ]

    def load_plain(self, rows: list[Any], shift: float, now: float) -> None:
        """Take back what `to_plain` gave, times less this process's `shift` and never
        later than `now`; raises `ValueError` or `TypeError` on rows it did not write.
        Rows saved before routes were kept have five columns, and no routes."""
        loaded: OrderedDict[bytes, Acquaintance] = OrderedDict()
        for row in rows[-self.capacity :]:
            node_id, host, port, first, last, *rest = row
            if not (isinstance(node_id, bytes) and isinstance(host, str) and isinstance(port, int)):
                raise TypeError("a peer book row of the wrong types")
            loaded[node_id] = Acquaintance(
                (host, port),
                min(float(first) - shift, now),
                min(float(last) - shift, now),
                _routes(rest),
            )
        self._known = loaded


def _routes(rest: list[Any]) -> tuple[Route, ...]:
    """A row's routes column, if it has one."""
    if not rest:
        return ()
    (texts,) = rest
    if not (isinstance(texts, list) and all(isinstance(text, str) for text in texts)):
        raise TypeError("a peer book row's routes of the wrong types")
    if len(texts) > MAX_ROUTES:
        raise ValueError(f"{len(texts)} routes exceed the limit of {MAX_ROUTES}")
    try:
        return tuple(Route.parse(text) for text in texts)
    except WireError as exc:
        raise ValueError(str(exc)) from None
