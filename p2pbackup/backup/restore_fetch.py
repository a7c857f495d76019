"""Fetching a restore's data packs: the first ones during the folder walk, then
as many at once as a memory budget allows.

A pack fetch gathers k shares from the mesh; the data phase began with a
whole fetch's wait before it could write a byte. The walk names the packs its
files need as it finds them, the first few are fetched alongside it, and the
data phase, which takes packs in that same order, finds them ready.

The data phase keeps several packs on their way so that every holder has a
request to answer, but counts them in bytes (`budget.Budget`), not in packs alone:
a pack held from its fetch until it is written costs its size in this
process and about as much in the peer, and the restore's memory must not
grow with the size of what it restores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import trio

from p2pbackup.backup.restore_files import FilePlan, Piece
from p2pbackup.codec.packstore import PackStore
from p2pbackup.errors import P2PBackupError


class Prefetch:
    """The first few data packs, fetched while the walk is still making folders.

    The data phase starts with the packs the walk needed first, in that order, so
    these are the ones it waits for; without this it waited a whole fetch (k
    shares from the mesh) before it could write a byte. At most `limit` packs."""

    def __init__(self, packs: PackStore, nursery: trio.Nursery, limit: int) -> None:
        self._packs = packs
        self._nursery = nursery
        self._limit = limit
        self._started = 0
        self._fetches: dict[bytes, _Fetch] = {}

    def want(self, pack_id: bytes, size_hint: int = 0) -> None:
        """Start fetching this pack now, unless `limit` fetches have begun already;
        `size_hint` as `PackStore.get` takes it."""
        if self._started < self._limit and pack_id not in self._fetches:
            self._started += 1
            fetch = self._fetches[pack_id] = _Fetch()
            self._nursery.start_soon(fetch.run, self._packs, pack_id, size_hint)

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        """The pack, from its early fetch when it had one, else fetched now."""
        fetch = self._fetches.pop(pack_id, None)
        if fetch is None:
            return await self._packs.get(pack_id, size_hint)
        await fetch.done.wait()
        if fetch.error is not None:
            raise fetch.error
        assert fetch.data is not None
        return fetch.data


class _Fetch:
    """One early fetch: its pack or its error, kept until the data phase asks."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.data: bytes | None = None
        self.error: P2PBackupError | None = None

    async def run(self, packs: PackStore, pack_id: bytes, size_hint: int) -> None:
        try:
            self.data = await packs.get(pack_id, size_hint)
        except P2PBackupError as exc:
            self.error = exc
        finally:
            self.done.set()


@dataclass(frozen=True)
class PackTask:
    """One pack of the data phase: what goes where, its bytes in the budget, and the
    events that keep the writes in order (`after`: the previous pack's `done`)."""

    pack_id: bytes
    writes: dict[FilePlan, list[Piece]]
    size: int
    after: trio.Event
    done: trio.Event


def pack_extent(writes: dict[FilePlan, list[Piece]]) -> int:
    """How much of the pack this restore reads: where its last needed blob ends, what the
    pack takes in memory at least (a pack is fetched whole)."""
    extents = pack_extents(piece for pieces in writes.values() for piece in pieces)
    return max(extents.values(), default=1)


def pack_extents(pieces: Iterable[Piece]) -> dict[bytes, int]:
    """`pack_extent` of each pack one file reads, in the order the file first needs them."""
    extents: dict[bytes, int] = {}
    for *_, loc in pieces:
        extents[loc.pack_id] = max(extents.get(loc.pack_id, 0), loc.offset + loc.length)
    return extents
