"""Keeping two owners' sets under one pack id apart in one peer's memory, sans-IO.

Shares are keyed by owner and pack (decision 0022), so a peer may hold a
squatter's junk set beside the owner's real one under the same pack id.
`Rounds` remembers sets by pack id; before each set's turn its memory is
brought back and after it set aside, so proofs and views of one set never
count for the other.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

Tables = Callable[[], tuple[dict[bytes, Any], ...]]


class SetsApart:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        # (pack id, owner) -> one entry per table (None: nothing kept there).
        self._aside: dict[tuple[bytes, bytes], tuple[Any, ...]] = {}

    def keep_only(self, held: Collection[tuple[bytes, bytes]]) -> None:
        """Forget what was set aside for sets no longer held."""
        self._aside = {key: entries for key, entries in self._aside.items() if key in held}

    def bring_back(self, pack_id: bytes, owner: bytes) -> None:
        """Before this owner's turn: its memory of the set replaces what is there."""
        entries = self._aside.pop((pack_id, owner), None)
        if entries is None:
            return
        for table, entry in zip(self._tables(), entries, strict=True):
            table.pop(pack_id, None)
            if entry is not None:
                table[pack_id] = entry

    def set_aside(self, pack_id: bytes, owner: bytes) -> None:
        """After this owner's turn: take its memory of the set out."""
        self._aside[(pack_id, owner)] = tuple(table.pop(pack_id, None) for table in self._tables())
