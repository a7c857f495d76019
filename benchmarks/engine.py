"""A diagnostic between the two ends: the real backup engine, in this process, no mesh.

The pipeline limit and the mesh backup differ by two kinds of cost: the engine's
own (worker-thread hops per chunk, the SQLite catalog, tree and index blobs,
upload scheduling) and the mesh's (DHT lookups, TCP to nine other processes
that share the same cores, the control socket). Running `BackupEngine` against a
pack store that does the same erasure coding and descriptor signing as
`MeshPackStore.put`, then drops the shares, splits the gap between the two.

It runs twice: with the peer's `to_thread` (each file open, chunk read, seal and
stat hops to a worker thread and back, as on a real peer) and with `inline`
(the simulator's: same calls, no thread). The difference is the price of the
hops, which the run counts.
"""

from __future__ import annotations

import collections
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from benchmarks.dataset import Dataset
from benchmarks.pipeline import LEASE_SECONDS, K, N
from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.engine import BackupEngine
from p2pbackup.base.offload import RunSync, inline, to_thread
from p2pbackup.codec.descriptor import describe_pack
from p2pbackup.codec.erasure import encode_pack
from p2pbackup.codec.packstore import PackReceipt
from p2pbackup.crypto.identity import Identity
from p2pbackup.crypto.keys import OwnerKeys

T = TypeVar("T")


class CodingPackStore:
    """`MeshPackStore.put` minus the network: encode, sign, count, forget."""

    def __init__(self, owner: Identity, run_sync: RunSync = to_thread) -> None:
        self.owner = owner
        self.run_sync = run_sync
        self.share_bytes = 0

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        shares: list[bytes] = await self.run_sync(encode_pack, data, K, N)
        lease = int(time.time()) + LEASE_SECONDS
        await self.run_sync(describe_pack, self.owner, pack_id, shares, K, len(data), lease)
        sent = sum(len(s) for s in shares)
        self.share_bytes += sent
        return PackReceipt(pack_id, K, N, N, sent)

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        raise NotImplementedError("the engine benchmark only backs up")


@dataclass
class EngineResult:
    mode: str  # "to_thread" (as on a peer) or "inline"
    seconds: float
    stats: dict[str, Any]
    hops: dict[str, int]  # run_sync calls by function

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "seconds": round(self.seconds, 4),
            "run_sync_calls": sum(self.hops.values()),
            "run_sync_by_function": self.hops,
            "stats": self.stats,
        }


def run_engine(dataset: Dataset, threaded: bool = True) -> EngineResult:
    """One first backup of the dataset through the engine, with a fresh catalog."""
    keys = OwnerKeys.from_master(bytes(32))
    hops: collections.Counter[str] = collections.Counter()
    target: RunSync = to_thread if threaded else inline

    async def counted(fn: Callable[..., T], *args: Any) -> T:
        hops[getattr(fn, "__qualname__", repr(fn))] += 1
        result: T = await target(fn, *args)
        return result

    with tempfile.TemporaryDirectory(prefix="p2pbackup-bench-engine-") as tmp:
        catalog = Catalog(Path(tmp) / "catalog.sqlite")
        try:
            engine = BackupEngine(
                BlobCodec(keys), catalog, CodingPackStore(keys.identity, target), run_sync=counted
            )
            started = time.perf_counter()
            trio.run(lambda: engine.run(list(dataset.roots), host="bench"))
            seconds = time.perf_counter() - started
        finally:
            catalog.close()
    mode = "to_thread" if threaded else "inline"
    return EngineResult(mode, seconds, engine.stats.as_dict(), dict(hops.most_common()))
