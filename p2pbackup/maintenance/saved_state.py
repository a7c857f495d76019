"""What a storage peer's maintenance keeps across a restart, as bytes, sans-IO.

A restart must not cost a peer what took days to learn: the proofs its
siblings gave over spaced rounds (decision 0021), which holders failed or
went unseen and how often, which keepers it passed over, and the peer book's
first-hand addresses and vetting times. Its counters carry on too. What the
last survey concluded (views) is not kept: after being away, a holder looks
at each set in full once. Nor are sets set aside for a squatted pack id
(`set_memory`): rare, and relearned in a few rounds.

Times are on the process's clock, which starts afresh with each process, so
they are written as wall-clock times (`shift`: wall clock minus process clock
when writing) and read back with the new process's shift. The caller owns the
file and writes it whole (decision 0030).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import cbor2

from p2pbackup.dht.peer_book import PeerBook
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.config import MaintenanceStats
from p2pbackup.maintenance.keepers import KeeperWatch
from p2pbackup.maintenance.proofs import ProofHistory
from p2pbackup.maintenance.rounds import Rounds
from p2pbackup.net.contact import Contact

FORMAT = 1
_COUNTERS = frozenset(f.name for f in fields(MaintenanceStats))


class StateUnreadable(P2PBackupError):
    """The saved state does not decode: it is ignored, and replaced at the next save."""


@dataclass
class SavedState:
    """A saved state decoded in full, into objects of its own, ready to take over."""

    stats: dict[str, int]
    proofs: ProofHistory
    keepers: KeeperWatch
    book: PeerBook
    tables: dict[str, dict[bytes, Any]]

    def apply(self, stats: MaintenanceStats, rounds: Rounds) -> None:
        """Counters and rounds' memory as saved; the caller installs `book`."""
        for name, value in self.stats.items():
            setattr(stats, name, value)
        rounds.proofs, rounds.keepers = self.proofs, self.keepers
        for name, table in rounds.kept().items():
            table.clear()
            table.update(self.tables[name])


def encode_state(stats: MaintenanceStats, rounds: Rounds, book: PeerBook, shift: float) -> bytes:
    """A maintainer's counters, its rounds' memory and its peer book, times plus `shift`."""
    kept = rounds.kept()
    siblings = {
        pack_id: [[c.node_id, c.host, c.port, index] for c, index in known.values()]
        for pack_id, known in kept["siblings"].items()
    }
    plain = {
        "format": FORMAT,
        "stats": stats.as_dict(),
        "proofs": rounds.proofs.to_plain(shift),
        "keepers": rounds.keepers.to_plain(),
        "pending": kept["pending"],
        "failures": kept["failures"],
        "siblings": siblings,
        "placed": {pack_id: sorted(ids) for pack_id, ids in kept["placed"].items()},
        "unseen": kept["unseen"],
        "peers": book.to_plain(shift),
    }
    return bytes(cbor2.dumps(plain))


def decode_state(
    data: bytes, rounds: Rounds, shift: float, now: float, book_capacity: int
) -> SavedState:
    """What `encode_state` wrote, for `rounds`' settings; `StateUnreadable` if any part
    does not decode, so a damaged file changes nothing."""
    try:
        plain = cbor2.loads(data)
        if not isinstance(plain, dict) or plain.get("format") != FORMAT:
            raise ValueError("not a maintenance state of this version")
        return _parse(plain, rounds, shift, now, book_capacity)
    except (cbor2.CBORDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StateUnreadable(f"unreadable maintenance state ({exc})") from None


def _parse(
    plain: dict[str, Any], rounds: Rounds, shift: float, now: float, book_capacity: int
) -> SavedState:
    stats = {name: int(value) for name, value in plain["stats"].items() if name in _COUNTERS}
    proofs = ProofHistory(rounds.proofs.rounds, rounds.proofs.span, rounds.proofs.gap)
    proofs.load_plain(plain["proofs"], shift, now)
    keepers = KeeperWatch(rounds.keepers.lost_after)
    keepers.load_plain(plain["keepers"])
    book = PeerBook(book_capacity)
    book.load_plain(plain["peers"], shift, now)
    tables: dict[str, dict[bytes, Any]] = {
        "pending": {_id(p): int(count) for p, count in plain["pending"].items()},
        "failures": {_id(n): int(count) for n, count in plain["failures"].items()},
        "siblings": {
            _id(p): {_id(n): (Contact(n, str(h), int(port)), int(i)) for n, h, port, i in rows}
            for p, rows in plain["siblings"].items()
        },
        "placed": {_id(p): {_id(n) for n in ids} for p, ids in plain["placed"].items()},
        "unseen": {
            _id(p): {int(i): int(streak) for i, streak in streaks.items()}
            for p, streaks in plain["unseen"].items()
        },
    }
    return SavedState(stats, proofs, keepers, book, tables)


def _id(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"an id must be bytes, not {type(value).__name__}")
    return value
