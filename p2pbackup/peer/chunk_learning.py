"""What an owner learns from its snapshot index before a backup: the chunks its other
devices (or itself, before a recovery) already placed, so they are not sent again,
and the packs another device released, which are no longer deduplicated against."""

from __future__ import annotations

from p2pbackup.backup.blob_reader import BlobReader, load_index
from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.snapshot import Locator
from p2pbackup.backup.snapshot_index import IndexState
from p2pbackup.base.offload import RunSync
from p2pbackup.codec.packstore import PackStore


async def learn_chunks(
    codec: BlobCodec, packs: PackStore, catalog: Catalog, state: IndexState, run: RunSync
) -> None:
    """Bring `catalog` up to the index `state`: released packs forgotten, every
    snapshot's and every repack's chunk locators known."""
    await run(_forget_released, catalog, state.released)
    reader = BlobReader(codec, packs, {})
    for snapshot in state.snapshots:
        if await run(catalog.is_indexed, snapshot.snapshot_id):
            continue
        index = await load_index(reader, snapshot.index, released=state.released)
        await run(_learn_index, catalog, index, snapshot.index, snapshot.snapshot_id)
    known = set(await run(catalog.index_blobs))
    for locator in state.reindexed:
        if locator not in known and locator.pack_id not in state.released:
            index = await load_index(reader, (locator,), released=state.released)
            await run(_learn_index, catalog, index, (locator,), None)


def _learn_index(
    catalog: Catalog,
    index: dict[bytes, Locator],
    blobs: tuple[Locator, ...],
    snapshot_id: bytes | None,
) -> None:
    """Record what one read of index blobs taught (catalog writes: off the event loop)."""
    catalog.add_locators(index.items())
    for locator in blobs:
        catalog.add_index_blob(locator)
    if snapshot_id is not None:
        catalog.mark_indexed(snapshot_id)


def _forget_released(catalog: Catalog, released: frozenset[bytes]) -> None:
    catalog.release(released - catalog.released())
