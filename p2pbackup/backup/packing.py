"""Which chunks a backup run packs, and into which packs.

A chunk is sealed and packed once: not when the mesh holds it already, nor when
this run packed it before (it is pending or placed). Folder lists go to packs
of their own: a restore or `ls` walks every tree before it needs any file data,
and fetched the data packs for them. A pack the packer finishes goes straight
to the uploads.
"""

from __future__ import annotations

import trio

from p2pbackup.backup.blobs import Pack, Packer
from p2pbackup.backup.scan import PACKED, SMALL_FILE, Claims, Prepared, Scanner
from p2pbackup.backup.tree import Tree
from p2pbackup.backup.uploads import Uploads
from p2pbackup.base.offload import RunSync


class Packing:
    """One run's packers and what it knows of which chunks the mesh or the run has.

    It packs for one run's `uploads`, under that run's codec, catalog, worker
    hand-off and stats. `began_empty`: the catalog held no chunk as the run began
    (see `held`)."""

    def __init__(
        self, uploads: Uploads, began_empty: bool = False, seal_sync: RunSync | None = None
    ) -> None:
        self.uploads = uploads
        self.codec = codec = uploads.codec
        self.catalog = uploads.catalog
        self.run_sync = uploads.run_sync
        # Where a file chunk is sealed: a worker thread in the engine process, while
        # trees (small, one per folder) seal where `run_sync` runs.
        self.seal_sync = uploads.run_sync if seal_sync is None else seal_sync
        self.stats = uploads.stats
        self.began_empty = began_empty
        self.packer: Packer = codec.packer()
        # A big file's chunks fill bigger packs: fewer shares, each with its fixed cost
        # to its holder and its owner. Small files and trees keep small packs, so a
        # restore of a few of them fetches little.
        self.big_packer: Packer = codec.big_packer()
        self.tree_packer: Packer = codec.packer()
        self.pending = uploads.pending  # packed this run but not yet placed
        self.claims: Claims = {}  # chunk id -> where in walk order it is first sealed
        # Read-ahead chunks neither the mesh nor this run had when their window was taken.
        self.fresh: set[bytes] = set()
        self.scanner: Scanner | None = None  # the run's scanner, once it has one

    def packer_for(self, size: int) -> Packer:
        """The packer of a file of `size` bytes read chunk by chunk."""
        return self.big_packer if size > SMALL_FILE else self.packer

    async def add_blob(
        self,
        nursery: trio.Nursery,
        plain: bytes,
        packer: Packer | None = None,
        chunk_id: bytes | None = None,
    ) -> bytes:
        """Store one chunk (file data or a tree) unless the mesh or this run has it.

        A file chunk comes with its id, hashed where it was read; a tree is hashed
        and sealed here."""
        seal_sync = self.run_sync
        if chunk_id is None:
            chunk_id = self.codec.chunk_id(plain)
        else:
            seal_sync = self.seal_sync
        if chunk_id in self.pending or self.held({chunk_id}):
            self.stats.chunks_reused += 1
            return chunk_id
        sealed = await seal_sync(self.codec.seal, chunk_id, plain)
        await self.add_sealed(nursery, chunk_id, sealed, held=False, packer=packer)
        return chunk_id

    async def store_tree(self, nursery: trio.Nursery, tree: Tree) -> bytes:
        # A tree's encoding depends only on its entries, so an unchanged folder gives
        # the same chunk id and dedups like file data: it is not sent again.
        return await self.add_blob(nursery, tree.encode(), self.tree_packer)

    async def add_sealed(
        self,
        nursery: trio.Nursery,
        chunk_id: bytes,
        sealed: bytes,
        held: bool | None = None,
        packer: Packer | None = None,
    ) -> None:
        """Pack a sealed chunk (into `packer`, by default the data packer) unless the
        mesh (`held`, looked up when None) or this run has it already."""
        for pack in self.pack(chunk_id, sealed, held, packer):
            await self.uploads.upload_data(nursery, pack)

    def pack(
        self, chunk_id: bytes, sealed: bytes, held: bool | None, packer: Packer | None = None
    ) -> list[Pack]:
        """`add_sealed` up to the packs it finished, which the caller uploads. Apart,
        because most chunks finish no pack and need not wait on anything."""
        if held is None:
            held = bool(self.held({chunk_id}))
        if held or chunk_id in self.pending:
            self.stats.chunks_reused += 1
            return []
        self.stats.chunks_new += 1
        self.pending.add(chunk_id)
        self.claims[chunk_id] = PACKED
        self.fresh.discard(chunk_id)
        return (packer or self.packer).add(chunk_id, sealed)

    async def flush(self, nursery: trio.Nursery) -> None:
        """Upload the packs still being filled: the data packs, then the tree pack."""
        for packer in (self.packer, self.big_packer, self.tree_packer):
            pack = packer.flush()
            if pack is not None:
                await self.uploads.upload_data(nursery, pack)

    def note_fresh(self, prepared: dict[bytes, Prepared | OSError]) -> None:
        """Find which read-ahead chunks are new, in one catalog query per window.

        A query per chunk cost more than the lookup itself. A chunk stays fresh
        until this run packs it; any later copy is then pending or placed."""
        ids = {cid for p in prepared.values() if isinstance(p, Prepared) for cid, _, _ in p.chunks}
        ids -= self.pending
        self.fresh |= ids - self.held(ids)

    def lacks_seal(self, prepared: Prepared) -> bool:
        """Whether the read-ahead left unsealed a chunk neither the mesh nor this run has.

        It skips a chunk an earlier file claimed; that file's chunk is packed by now,
        unless its read then failed."""
        return any(
            sealed is None and cid in self.fresh and cid not in self.pending
            for cid, _, sealed in prepared.chunks
        )

    def held(self, chunk_ids: set[bytes]) -> set[bytes]:
        """Which of these chunks, none of them pending, the mesh holds.

        When the catalog held no chunk as the run began, the mesh holds exactly the
        chunks this run packed and placed, and each of those is still claimed as
        `PACKED` unless the scanner dropped the claims: a first backup then answers
        without a catalog query per folder and per tree."""
        scanner = self.scanner
        if self.began_empty and not (scanner is not None and scanner.claims_dropped):
            return {cid for cid in chunk_ids if self.claims.get(cid) == PACKED}
        return self.catalog.known_chunks(chunk_ids)
