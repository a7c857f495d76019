"""How well the mesh holds an owner's packs: `check` and `repair` behind the control socket.

Every pack any snapshot reads (its data and its index blobs) is surveyed:
each share audited, and with `repair` every one not proven live rebuilt and
placed again. An index blob that cannot be read is reported, and its pack is
checked like the others: it may be the only way back to it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio

from p2pbackup.backup.restore import BlobReader, load_index
from p2pbackup.backup.snapshot import Locator
from p2pbackup.backup.snapshot_index import IndexState
from p2pbackup.base.offload import RunSync
from p2pbackup.codec.packstore import named_pack
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.owner_check import PackHealth, Patience, survey_pack
from p2pbackup.maintenance.repair import reencode_pack, repair_pack
from p2pbackup.peer.control import Progress
from p2pbackup.peer.results import HealthReport
from p2pbackup.shares.mesh_packs import MeshPackStore, Redundancy

PARALLEL_PACKS = 8
REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class PackSurvey:
    """What a survey of one owner's packs needs from its peer."""

    packs: MeshPackStore
    owner: bytes
    rng: random.Random
    run_sync: RunSync
    # With a repair: encode again every pack whose k/n differ from this (decision 0034).
    reencode: Redundancy | None = None


async def survey_packs(
    survey: PackSurvey,
    reader: BlobReader,
    state: IndexState,
    progress: Progress,
    *,
    repair: bool,
    read_data: bool,
) -> HealthReport:
    """The health of every pack the snapshots use (the report's `seconds` left at 0)."""
    locators = state.index_blobs()
    index_errors: list[str] = []
    index = await load_index(reader, locators, index_errors, state.released)
    packs = sorted({loc.pack_id for loc in index.values()} | {loc.pack_id for loc in locators})
    patience = Patience()
    healths, placed, reencoded, short = await _each_pack(survey, packs, progress, repair, patience)
    chunks_read: int | None = None
    chunk_errors: list[str] | None = None
    if read_data:
        chunks_read, chunk_errors = await _read_all(reader, index)
    return HealthReport(
        snapshots=len(state.snapshots),
        packs=len(packs),
        healthy=sum(1 for h in healths if h.n and h.live == h.n),
        degraded=sum(1 for h in healths if h.recoverable and h.live < h.n),
        unrecoverable=sum(1 for h in healths if not h.recoverable),
        min_live_shares=min((h.live for h in healths), default=0),
        unrecoverable_packs=sorted(h.pack_id.hex() for h in healths if not h.recoverable),
        index_errors=index_errors,
        # The counts above are what the repair found; this is what it rebuilt.
        shares_rebuilt=placed if repair else None,
        still_short=short if repair else None,
        chunks_read=chunks_read,
        chunk_errors=chunk_errors,
        packs_reencoded=len(reencoded.done) if survey.reencode else None,
        reencode_errors=reencoded.errors if survey.reencode else None,
        hung_peers=sorted(node_id.hex() for node_id in patience.hung),
    )


@dataclass
class _Reencoded:
    done: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _each_pack(
    survey: PackSurvey, packs: list[bytes], progress: Progress, repair: bool, patience: Patience
) -> tuple[list[PackHealth], int, _Reencoded, int]:
    """Each pack's health, the shares a repair placed, what it encoded again, and how
    many recoverable packs the repair left under n shares (too few peers took them)."""
    dht = survey.packs.dht
    healths: list[PackHealth] = []
    placed = short = 0
    reencoded = _Reencoded()
    limiter = trio.CapacityLimiter(PARALLEL_PACKS)

    async def one(pack_id: bytes) -> None:
        nonlocal placed, short
        async with limiter:
            again = await _reencode(survey, pack_id, reencoded, patience) if repair else None
            if again is not None:
                health, rebuilt = again
                placed += rebuilt
            elif repair:
                health, rebuilt = await repair_pack(
                    dht,
                    survey.packs,
                    pack_id,
                    survey.owner,
                    survey.rng,
                    REQUEST_TIMEOUT,
                    survey.run_sync,
                    patience,
                    survey.packs.send_gate,
                )
                placed += rebuilt
                short += health.recoverable and health.live + rebuilt < health.n
            else:
                found, _ = await survey_pack(
                    dht, pack_id, survey.owner, survey.rng, REQUEST_TIMEOUT, patience
                )
                health = PackHealth.of(pack_id, found)
            healths.append(health)
            await progress({"packs_checked": len(healths), "packs": len(packs)})

    async with trio.open_nursery() as nursery:
        for pack_id in packs:
            nursery.start_soon(one, pack_id)
    return healths, placed, reencoded, short


async def _reencode(
    survey: PackSurvey, pack_id: bytes, reencoded: _Reencoded, patience: Patience
) -> tuple[PackHealth, int] | None:
    """The pack encoded again to the survey's redundancy; None when it needs no new
    encoding (or could not get one: the error is kept, and a plain repair follows)."""
    if survey.reencode is None:
        return None
    packs = survey.packs
    try:
        again = await reencode_pack(
            packs.dht,
            packs,
            pack_id,
            packs.owner,
            survey.reencode,
            survey.rng,
            REQUEST_TIMEOUT,
            survey.run_sync,
            packs.now,
            patience,
            packs.send_gate,
        )
    except P2PBackupError as exc:
        reencoded.errors.append(str(exc))
        return None
    if again is not None and again[1]:
        reencoded.done.append(pack_id)
    return again


async def _read_all(reader: BlobReader, index: dict[bytes, Locator]) -> tuple[int, list[str]]:
    """Fetch every pack once and open every chunk against its id."""
    by_pack: dict[bytes, list[tuple[bytes, Locator]]] = {}
    for chunk_id, locator in index.items():
        by_pack.setdefault(locator.pack_id, []).append((chunk_id, locator))
    read, errors = 0, []
    for pack_id, chunks in sorted(by_pack.items()):
        try:
            for chunk_id, locator in chunks:
                await reader.at(locator, chunk_id)
                read += 1
        except P2PBackupError as exc:
            errors.append(named_pack(pack_id, str(exc)))
    return read, errors
