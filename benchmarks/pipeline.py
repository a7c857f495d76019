"""The pipeline limit: every per-byte step of a backup, in one thread, no network.

This is the rate a backup could reach if moving shares to peers, the DHT, the
catalog and process boundaries cost nothing. Comparing the mesh backup to it
tells whether time goes into the codec (fix the codec) or around it (fix the
engine, the transport or the placement).

The steps are exactly the engine's and `MeshPackStore.put`'s: walk with the
engine's own listing, content-defined chunking, keyed chunk id, dedup within the
run, zstd + AEAD seal, packing, k-of-n erasure coding and the signed descriptor
with a Merkle root per share. Tree blobs and the index are left out: they are
metadata, not per-byte work.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from benchmarks.dataset import Dataset
from p2pbackup.backup.blobs import BlobCodec, ChunkReader, Pack
from p2pbackup.backup.tree import EntryKind
from p2pbackup.backup.walk import FsEntry, absolute, list_directory, stat_entry
from p2pbackup.codec.descriptor import describe_pack
from p2pbackup.codec.erasure import encode_pack
from p2pbackup.codec.packs import Packer
from p2pbackup.crypto.keys import OwnerKeys

K, N = 3, 10  # the mesh's default redundancy (`Redundancy`)
LEASE_SECONDS = 90 * 24 * 3600
PHASES = ("walk", "chunk", "chunk_id", "seal", "pack", "erasure", "describe")


@dataclass
class PipelineResult:
    """Seconds in total and per phase, and what the run produced."""

    seconds: float = 0.0
    bytes_read: int = 0
    files: int = 0
    chunks: int = 0
    chunks_new: int = 0
    sealed_bytes: int = 0
    packs: int = 0
    pack_bytes: int = 0
    share_bytes: int = 0
    minor_faults: int = 0
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))

    def as_dict(self) -> dict[str, object]:
        return {
            "seconds": round(self.seconds, 4),
            "bytes_read": self.bytes_read,
            "files": self.files,
            "chunks": self.chunks,
            "chunks_new": self.chunks_new,
            "sealed_bytes": self.sealed_bytes,
            "packs": self.packs,
            "pack_bytes": self.pack_bytes,
            "share_bytes": self.share_bytes,
            "minor_page_faults": self.minor_faults,
            "phase_seconds": {k: round(v, 4) for k, v in self.phases.items()},
        }


def _files(entry: FsEntry, result: PipelineResult) -> Iterator[FsEntry]:
    """Regular files under `entry`, in the engine's order (sorted listings, no links)."""
    if entry.kind is EntryKind.FILE:
        yield entry
    elif entry.kind is EntryKind.DIR:
        started = time.perf_counter()
        try:
            children = list_directory(entry.path)
        except OSError:
            children = []
        result.phases["walk"] += time.perf_counter() - started
        for child in children:
            yield from _files(child, result)


def run_pipeline(dataset: Dataset) -> PipelineResult:
    """Push the dataset through the codec once; wall time is the limit's denominator.

    The per-phase timers cost a few perf_counter calls per chunk, negligible at
    ~1 MiB chunks and a few thousand files."""
    keys = OwnerKeys.from_master(bytes(32))
    codec = BlobCodec(keys)
    packer = codec.packer()
    lease = int(time.time()) + LEASE_SECONDS
    seen: set[bytes] = set()
    result = PipelineResult()
    clock = time.perf_counter
    phases = result.phases

    def finish(pack: Pack) -> None:
        started = clock()
        shares = encode_pack(pack.data, K, N)
        middle = clock()
        describe_pack(keys.identity, pack.pack_id, shares, K, len(pack.data), lease)
        phases["erasure"] += middle - started
        phases["describe"] += clock() - middle
        result.packs += 1
        result.pack_bytes += len(pack.data)
        result.share_bytes += sum(len(s) for s in shares)

    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    began = clock()
    for root in dataset.roots:
        for entry in _files(stat_entry(absolute(root)), result):
            opened = clock()
            try:
                reader = codec.open_chunker(entry.path)
            except OSError:
                continue
            finally:
                phases["chunk"] += clock() - opened
            result.files += 1
            with reader:
                for pack in _push_file(reader, codec, packer, seen, result):
                    finish(pack)
    t4 = clock()
    tail = packer.flush()
    phases["pack"] += clock() - t4
    if tail is not None:
        finish(tail)
    result.seconds = clock() - began
    result.minor_faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return result


def _push_file(
    reader: ChunkReader, codec: BlobCodec, packer: Packer, seen: set[bytes], result: PipelineResult
) -> Iterator[Pack]:
    """Cut, hash and seal one file's chunks into `packer`; the packs they filled."""
    clock, phases = time.perf_counter, result.phases
    while True:
        t0 = clock()
        plain = reader.next_chunk()
        t1 = clock()
        phases["chunk"] += t1 - t0
        if plain is None:
            return
        result.chunks += 1
        result.bytes_read += len(plain)
        chunk_id = codec.chunk_id(plain)
        t2 = clock()
        phases["chunk_id"] += t2 - t1
        if chunk_id in seen:
            continue  # the engine dedups within a run too
        seen.add(chunk_id)
        sealed = codec.seal(chunk_id, plain)
        t3 = clock()
        phases["seal"] += t3 - t2
        result.chunks_new += 1
        result.sealed_bytes += len(sealed)
        done = packer.add(chunk_id, sealed)
        phases["pack"] += clock() - t3
        yield from done
