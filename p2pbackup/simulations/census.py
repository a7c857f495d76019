"""The world's hourly count of distinct live and durable shares per pack, kept by differences.

Counting every store's shares afresh each simulated hour was a twenty-third of a
simulated month at 1,000 peers, though in most hours few stores change and
few peers come or go. The census remembers what each store added to the
counts and, when the store's shares or its standing (up, away, gone) change,
takes the old part out and puts the new one in. The counts are those a fresh
count would give: per pack, how many of its indices at least one counted
store holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

Pair = tuple[bytes, int]  # (pack id, share index)
NOTHING: frozenset[Pair] = frozenset()  # what a store not counted adds


class _Tally:
    """How many counted stores hold each (pack, index), and per pack how many indices
    have at least one."""

    def __init__(self) -> None:
        self.holders: Counter[Pair] = Counter()
        self.per_pack: Counter[bytes] = Counter()

    def add(self, pairs: Iterable[Pair]) -> None:
        holders, per_pack = self.holders, self.per_pack
        for pair in pairs:
            if not holders[pair]:
                per_pack[pair[0]] += 1
            holders[pair] += 1

    def remove(self, pairs: Iterable[Pair]) -> None:
        holders, per_pack = self.holders, self.per_pack
        for pair in pairs:
            left = holders[pair] - 1
            if left:
                holders[pair] = left
            else:
                del holders[pair]
                per_pack[pair[0]] -= 1


class ShareCensus:
    """Per pack: distinct indices on stores counted live, and on those counted durable."""

    def __init__(self) -> None:
        self.live = _Tally()
        self.durable = _Tally()
        # Per store: the pairs it holds and whether they count as live, as durable.
        self._given: dict[bytes, tuple[frozenset[Pair], bool, bool]] = {}
        self._seen: set[bytes] = set()

    def store(self, node_id: bytes, held: frozenset[Pair], live: bool, durable: bool) -> None:
        """What one store holds now, and how it counts (live implies durable)."""
        self._seen.add(node_id)
        before = self._given.get(node_id)
        if before is not None and before[0] is held and before[1:] == (live, durable):
            return
        was, was_live, was_durable = before if before is not None else (NOTHING, False, False)
        self._move(self.live, was if was_live else NOTHING, held if live else NOTHING)
        self._move(self.durable, was if was_durable else NOTHING, held if durable else NOTHING)
        self._given[node_id] = (held, live, durable)

    def close_round(self) -> tuple[Counter[bytes], Counter[bytes]]:
        """Stores not reported since the last call count no more; the live and durable
        indices per pack."""
        for node_id in [n for n in self._given if n not in self._seen]:
            self.store(node_id, NOTHING, False, False)
            del self._given[node_id]
        self._seen = set()
        return self.live.per_pack, self.durable.per_pack

    @staticmethod
    def _move(tally: _Tally, old: frozenset[Pair], new: frozenset[Pair]) -> None:
        if old is new:
            return
        tally.remove(old - new)
        tally.add(new - old)
