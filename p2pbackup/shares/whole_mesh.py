"""When an owner may place a pack without a lookup: its table already is the whole mesh.

A pack's placement needs the peers closest to its id, and an owner looked
them up for every pack: in a mesh of ten peers, nine FIND_NODE requests per
pack, each answered with the same nine names, a third of the requests of a
big backup. A lookup that wanted k peers and found fewer, every one of them
already in the owner's routing table, and every table contact either found
or passed over as suspect, showed that the table names every live peer of
the mesh. Until the table changes or `ttl` seconds pass, the closest peers to
any id are then the table's, ranked by XOR distance as the lookup ranks
them; a peer that died meanwhile fails its share's put, which moves the
share on (as a lookup would have left it out) and marks the peer suspect.

Sans-IO: the caller hands in the lookup's result, the table's ids and the time.
"""

from __future__ import annotations

from collections.abc import Iterable

from p2pbackup.net.contact import Contact


class WholeMesh:
    """Whether the routing table, as it stands, names every live peer of the mesh.

    `ttl` 0 never says so: every placement looks its peers up."""

    def __init__(self, ttl: float) -> None:
        if ttl < 0:
            raise ValueError("ttl must not be negative")
        self.ttl = ttl
        self._ids: frozenset[bytes] | None = None
        self._until = 0.0

    def learn(
        self,
        found: Iterable[Contact],
        wanted: int,
        skipped: Iterable[bytes],
        table: frozenset[bytes],
        now: float,
    ) -> None:
        """A lookup that wanted `wanted` peers found `found` and passed over `skipped`,
        with the routing table holding `table` after it."""
        found_ids = {c.node_id for c in found}
        exhausted = len(found_ids) < wanted
        if self.ttl > 0 and exhausted and found_ids <= table and found_ids | set(skipped) >= table:
            self._ids, self._until = table, now + self.ttl
        else:
            self._ids = None

    def holds(self, table: frozenset[bytes], now: float) -> bool:
        """Whether `table` is still the whole mesh the last lookup showed."""
        if self._ids is None or now >= self._until:
            return False
        return table == self._ids

    def forget(self) -> None:
        """A placement went wrong: the next one looks its peers up again."""
        self._ids = None
