"""Which peers audited each share this peer holds, and when.

The keeper of a share set audits every sibling each round. A sibling that
was audited by its keeper lately knows the keeper is alive and watching the
set, and skips its own round for that set: a healthy set then costs only the
keeper's audits, not one more audit per sibling.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from p2pbackup.net.contact import Contact

# Only siblings (and the owner, checking) audit a share; more than this many
# distinct auditors of one pack means churn, and the oldest are forgotten.
AUDITORS_PER_PACK = 16


class AuditLog:
    """pack id -> {auditor node id: time of its last successful audit}."""

    def __init__(self, clock: Callable[[], float] = trio.current_time) -> None:
        self._clock = clock
        self._heard: dict[bytes, dict[bytes, float]] = {}
        self._contacts: dict[bytes, Contact] = {}  # where each auditor said it listens

    def note(self, pack_id: bytes, auditor: bytes, contact: Contact | None = None) -> None:
        if contact is not None:
            self._contacts[auditor] = contact
        heard = self._heard.setdefault(pack_id, {})
        heard.pop(auditor, None)  # re-insert: dict order is then oldest first
        heard[auditor] = self._clock()
        while len(heard) > AUDITORS_PER_PACK:
            del heard[next(iter(heard))]

    def auditors(self, pack_id: bytes, within: float) -> list[bytes]:
        """The peers that audited us for this pack in the last `within` seconds."""
        now = self._clock()
        return [a for a, when in self._heard.get(pack_id, {}).items() if now - when <= within]

    def contact(self, auditor: bytes) -> Contact | None:
        return self._contacts.get(auditor)

    def forget(self, pack_id: bytes) -> None:
        self._heard.pop(pack_id, None)
