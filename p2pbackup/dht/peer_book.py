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
(`to_plain`, `load_plain`): it must not forget whom it vetted for days.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from p2pbackup.net.contact import Contact

DEFAULT_CAPACITY = 8192  # ids remembered; the least recently heard go first


@dataclass(slots=True)
class Acquaintance:
    address: tuple[str, int]
    first_seen: float  # first answer at `address` (or since the last failed audit)
    last_seen: float


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
        known = self._known.get(contact.node_id)
        return known is not None and known.address == contact.address

    def known_since(self, node_id: bytes) -> float | None:
        known = self._known.get(node_id)
        return known.first_seen if known is not None else None

    def vetted(self, node_id: bytes, now: float, period: float) -> bool:
        """Answered us for at least `period` seconds, with no failed audit meanwhile."""
        since = self.known_since(node_id)
        return since is not None and now - since >= period

    # ---- across restarts -------------------------------------------------

    def to_plain(self, shift: float) -> list[list[Any]]:
        """Each acquaintance, least recently heard first, its times plus `shift` (the
        caller's clock to wall-clock time, so they mean something after a restart)."""
        return [
            [
                node_id,
                known.address[0],
                known.address[1],
                known.first_seen + shift,
                known.last_seen + shift,
            ]
            for node_id, known in self._known.items()
        ]

    def load_plain(self, rows: list[Any], shift: float, now: float) -> None:
        """Take back what `to_plain` gave, times less this process's `shift` and never
        later than `now`; raises `ValueError` or `TypeError` on rows it did not write."""
        loaded: OrderedDict[bytes, Acquaintance] = OrderedDict()
        for node_id, host, port, first, last in rows[-self.capacity :]:
            if not (isinstance(node_id, bytes) and isinstance(host, str) and isinstance(port, int)):
                raise TypeError("a peer book row of the wrong types")
            loaded[node_id] = Acquaintance(
                (host, port), min(float(first) - shift, now), min(float(last) - shift, now)
            )
        self._known = loaded
