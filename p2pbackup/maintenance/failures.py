"""How many checks in a row each peer failed, across every set a holder keeps.

A peer silent once may be away for a while: it is only suspect, and its
share is rebuilt once it failed `lost_after` checks running (a full survey,
or a quiet round's audit). Proving any share again clears its count.
"""

from __future__ import annotations

from collections.abc import Iterable


class FailureCounts:
    def __init__(self, lost_after: int) -> None:
        self.lost_after = lost_after
        # Per node id: checks in a row it failed in (any pack); kept across restarts.
        self.counts: dict[bytes, int] = {}

    def count(self, failed: Iterable[bytes], proven: Iterable[bytes] = ()) -> None:
        for node_id in failed:
            self.counts[node_id] = self.counts.get(node_id, 0) + 1
        for node_id in proven:
            self.counts.pop(node_id, None)

    def suspects(self, failed: Iterable[bytes]) -> set[bytes]:
        """Of `failed`, those that failed fewer than `lost_after` checks running."""
        return {node_id for node_id in failed if self.counts.get(node_id, 0) < self.lost_after}

    def lost(self) -> set[bytes]:
        """Peers that failed `lost_after` checks in a row: they get no rebuilt share."""
        return {node_id for node_id, n in self.counts.items() if n >= self.lost_after}
