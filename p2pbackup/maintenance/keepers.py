"""Which keepers a holder stopped waiting for, sans-IO.

The keeper of a set (the closest holder this peer established) is the one
that repairs it. A keeper that proves its own share but never repairs (an
identity ground close to the pack, say) would silence repair for good; so a
holder that finds the set wanting repair `lost_after` surveys running under
one keeper passes that keeper over, and the next one repairs. A set found
whole forgives everyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class KeeperWatch:
    lost_after: int
    _passed_over: dict[bytes, set[bytes]] = field(default_factory=dict)
    _streak: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)

    def passed_over(self, pack_id: bytes) -> frozenset[bytes]:
        return frozenset(self._passed_over.get(pack_id, ()))

    def whole(self, pack_id: bytes) -> None:
        """The set was found whole: every keeper is trusted again."""
        self._passed_over.pop(pack_id, None)
        self._streak.pop(pack_id, None)

    def idle(self, pack_id: bytes, keeper: bytes | None) -> bool:
        """After a survey: `keeper` left the set wanting repair (None: nobody else keeps,
        or nothing wanted). True when it is passed over from now on."""
        if keeper is None:
            self._streak.pop(pack_id, None)
            return False
        last, streak = self._streak.get(pack_id, (keeper, 0))
        streak = streak + 1 if last == keeper else 1
        if streak < self.lost_after:
            self._streak[pack_id] = (keeper, streak)
            return False
        self._streak.pop(pack_id, None)
        self._passed_over.setdefault(pack_id, set()).add(keeper)
        return True

    def forget(self, pack_id: bytes) -> None:
        self._passed_over.pop(pack_id, None)
        self._streak.pop(pack_id, None)

    def to_plain(self) -> dict[str, dict[bytes, Any]]:
        passed_over = {pack_id: sorted(ids) for pack_id, ids in self._passed_over.items()}
        return {"passed_over": passed_over, "streak": {p: list(s) for p, s in self._streak.items()}}

    def load_plain(self, plain: dict[str, dict[bytes, Any]]) -> None:
        """Take back what `to_plain` gave."""
        passed_over = {_id(p): {_id(n) for n in ids} for p, ids in plain["passed_over"].items()}
        streak = {_id(p): (_id(n), int(c)) for p, (n, c) in plain["streak"].items()}
        self._passed_over, self._streak = passed_over, streak

    def per_pack(self) -> tuple[dict[bytes, Any], ...]:
        """The tables kept per pack, for a caller that sets one set's memory aside."""
        return (self._passed_over, self._streak)


def _id(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"an id must be bytes, not {type(value).__name__}")
    return value
