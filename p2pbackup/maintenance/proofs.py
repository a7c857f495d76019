"""What a holder saw its siblings prove, round after round, sans-IO.

A claim answered once proves little: an identity closest to a pack can fetch
shares as a sibling and then prove, to each holder that asks, that holder's
own index. What a holder acts on (dropping its copy, trusting a keeper,
letting a taker replace it) is therefore a sibling's *established* index: one
it proved to this holder in several rounds spread over time, with no failed
audit since. The history is first-hand (only our own audits count), kept per
held pack and forgotten with it, and bounded per pack.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

# Siblings remembered per pack: a survey asks n plus a margin, and holders
# come and go; beyond this the least recently proven are forgotten.
SIBLINGS_PER_PACK = 48


@dataclass(slots=True)
class _Record:
    index: int
    first: float  # the first counted pass
    last: float  # the last counted pass
    rounds: int  # passes counted, each at least `gap` after the one before


class ProofHistory:
    """Per pack: each sibling's proven index, and in how many spaced rounds it proved it."""

    def __init__(self, rounds: int, span: float, gap: float) -> None:
        self.rounds = rounds
        self.span = span
        self.gap = gap
        self._packs: dict[bytes, OrderedDict[bytes, _Record]] = {}

    def passed(self, pack_id: bytes, node_id: bytes, index: int, now: float) -> None:
        """It proved share `index` to us just now; a pass within `gap` of the last counts once."""
        records = self._packs.setdefault(pack_id, OrderedDict())
        record = records.get(node_id)
        if record is None or record.index != index:
            # A new claim, or another index than before: the count starts over.
            records[node_id] = _Record(index, now, now, 1)
        elif now - record.last >= self.gap:
            record.last = now
            record.rounds += 1
        records.move_to_end(node_id)
        while len(records) > SIBLINGS_PER_PACK:
            records.popitem(last=False)

    def flunked(self, pack_id: bytes, node_id: bytes) -> None:
        """It failed an audit of its claim: whatever it proved before counts no more."""
        records = self._packs.get(pack_id)
        if records is not None:
            records.pop(node_id, None)

    def established(self, pack_id: bytes, node_id: bytes) -> int | None:
        """The index it proved in `rounds` spaced rounds over at least `span`; else None."""
        records = self._packs.get(pack_id)
        record = records.get(node_id) if records is not None else None
        if record is None or record.rounds < self.rounds or record.last - record.first < self.span:
            return None
        return record.index

    def forget(self, pack_id: bytes) -> None:
        self._packs.pop(pack_id, None)

    def to_plain(self, shift: float) -> dict[bytes, list[list[Any]]]:
        """Per pack, each sibling's record (oldest first), its times plus `shift`."""
        return {
            pack_id: [
                [n, r.index, r.first + shift, r.last + shift, r.rounds] for n, r in recs.items()
            ]
            for pack_id, recs in self._packs.items()
        }

    def load_plain(self, packs: dict[bytes, list[Any]], shift: float, now: float) -> None:
        """Take back what `to_plain` gave, times less `shift` and never later than `now`."""
        loaded: dict[bytes, OrderedDict[bytes, _Record]] = {}
        for pack_id, rows in packs.items():
            records: OrderedDict[bytes, _Record] = OrderedDict()
            for node_id, index, first, last, rounds in rows[-SIBLINGS_PER_PACK:]:
                if not isinstance(node_id, bytes) or not isinstance(pack_id, bytes):
                    raise TypeError("a proof record of the wrong types")
                when = (min(float(first) - shift, now), min(float(last) - shift, now))
                records[node_id] = _Record(int(index), *when, int(rounds))
            loaded[pack_id] = records
        self._packs = loaded

    def per_pack(self) -> tuple[dict[bytes, Any], ...]:
        """The tables kept per pack, for a caller that sets one set's memory aside."""
        return (self._packs,)
