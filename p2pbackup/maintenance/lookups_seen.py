"""What a holder's last lookup of a share set showed, sans-IO: may the next survey go without?

A holder near the edge of its set's n closest looks the set up at every full
survey (decision 0056), to find closer newcomers its routing table has not
met. Most such lookups name no one the table did not already answer with.
After one that found the table complete, the holder's next full surveys of
the set within `trust_for` seconds ask the table alone (decision 0071): a
newcomer that joins near the set reaches the tables of the peers nearest to
it with its own join lookup, and a table that names one sends its holders
back to a full survey anyway. A lookup that finds a closer peer the table
missed trusts nothing: the next survey looks up again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from p2pbackup.base.ids import distance
from p2pbackup.net.contact import Contact


class LookupsSeen:
    def __init__(self, node_id: bytes, trust_for: float, now: Callable[[], float]) -> None:
        self._node_id = node_id
        self._trust_for = trust_for
        self._now = now
        # Per pack: when a lookup last found the routing table complete near it.
        self._complete: dict[bytes, float] = {}

    def table_trusted(self, pack_id: bytes) -> bool:
        """Did a lookup lately find the table complete near this set?"""
        since = self._complete.get(pack_id)
        return since is not None and self._now() - since < self._trust_for

    def looked_up(self, pack_id: bytes, found: list[Contact], table: Collection[bytes]) -> None:
        """A lookup's answer: complete when every peer it found closer to the set than
        us is one of the table's (`table`: the node ids the survey asked from it)."""
        mine = distance(self._node_id, pack_id)
        if all(c.node_id in table for c in found if distance(c.node_id, pack_id) < mine):
            self._complete[pack_id] = self._now()
        else:
            self._complete.pop(pack_id, None)

    def per_pack(self) -> tuple[dict[bytes, Any], ...]:
        """The table kept per held pack (`set_memory` moves entries out)."""
        return (self._complete,)

    def keep_only(self, held: Collection[bytes]) -> None:
        """Forget the sets no longer held."""
        self._complete = {p: t for p, t in self._complete.items() if p in held}
