"""Which addresses to check by dialling back, sans-IO.

A peer that connects to us names the address it listens at, and a lookup's
answers name addresses of others; anyone can name any address, so such a
contact is used only after we dialled it and the same id answered there
(decision 0023). Checking is cheap but not free, and a flood of identities
all naming one victim's address must not turn this peer into a dialler of
that victim: one check per address per cooldown, whatever id claimed it,
and a bounded queue of checks worked off a few at a time; claims beyond that
are dropped (the claimant is checked on a later request, after the cooldown).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from p2pbackup.net.contact import Contact

Address = tuple[str, int]
REMEMBERED = 4096  # addresses whose last check is remembered
QUEUED = 256  # checks waiting or under way
ROUTES_TRIED = 3  # direct routes of one contact a check tries


class DialBacks:
    def __init__(self, cooldown: float, capacity: int = REMEMBERED, queued: int = QUEUED) -> None:
        self.cooldown = cooldown
        self.capacity = capacity
        self.queued = queued
        self.pending: set[Hashable] = set()  # queued or being dialled
        self._tried: OrderedDict[Hashable, float] = OrderedDict()

    def offer(self, address: Hashable, now: float) -> bool:
        """Should `address` (or a contact's `check_key`) be checked? If so it is pending
        until `done`."""
        if len(self.pending) >= self.queued or address in self.pending:
            return False
        last = self._tried.get(address)
        if last is not None and now - last < self.cooldown:
            return False
        self.pending.add(address)
        self._tried[address] = now
        self._tried.move_to_end(address)
        while len(self._tried) > self.capacity:
            self._tried.popitem(last=False)
        return True

    def done(self, address: Hashable) -> None:
        self.pending.discard(address)


def check_key(contact: Contact) -> Hashable:
    """What one check of `contact` counts against. A contact that names routes is dialled
    only there (each route address passes its own bound), never at its main address, which
    peers behind one NAT may share (its public address and a common port): such checks
    are told apart by id, and a contact naming new routes (another relay) is a new claim."""
    if not contact.routes:
        return contact.address
    return (contact.address, contact.node_id, contact.routes)


def direct_routes(contact: Contact) -> list[tuple[Address, bool]]:
    """The addresses a check of `contact` dials, in its order, each with whether it
    still has to pass `DialBacks.offer` (the main address already did, in `_check`).
    A contact answering through any of its direct routes is verified; each route's
    address passes the same per-address bound as a main one, so a flood of contacts
    naming one victim in their routes dials it no more often than naming it as their
    address would.

    Relay routes are left out: a dial-back is a fresh dial to an address, which a
    relay is not."""
    if not contact.routes:
        return [(contact.address, False)]
    direct = [route.address for route in contact.routes if route.relay is None]
    unique = list(dict.fromkeys(direct))[:ROUTES_TRIED]
    return [(address, address != contact.address) for address in unique]
