"""A holder's first look at a set it never surveyed: wait once for a nearer holder.

The owner, or a repairing keeper, placed the set moments ago on the peers
nearest the pack, and the nearest of them surveys it and audits every
sibling within its round. A holder that waits a round for that audit can
then vet the auditor with one query instead of surveying n + 5 peers, as
every holder did on its first round before (decision 0084). Only a peer
nearer the pack in our own table is a reason to wait, and only once per
set: if nobody audited us by the next round, we survey.
"""

from __future__ import annotations

from collections.abc import Callable

from p2pbackup.maintenance.holder_rules import n_nearer
from p2pbackup.net.contact import Contact


class FirstWaits:
    def __init__(self, node_id: bytes, nearby: Callable[[bytes, int], list[Contact]]) -> None:
        self.node_id = node_id
        self.nearby = nearby
        # Per held pack we waited on once already: the next first look surveys.
        self.waited: dict[bytes, bool] = {}

    def wait(self, pack_id: bytes, surveyed: bool) -> bool:
        """Skip this round for a set we never `surveyed`? True once, when our table
        knows a peer nearer the pack than us."""
        if surveyed or pack_id in self.waited:
            return False
        self.waited[pack_id] = True
        return n_nearer(self.node_id, pack_id, self.nearby(pack_id, 1), 1)
