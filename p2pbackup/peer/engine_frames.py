"""The frames a peer and its engine process exchange, one type each, both ends agreeing.

`FrameChannel` carries maps; this module is where they become typed frames
and back. From the peer: `start` (once, naming the job), then per pack
`placed`, `pack` or `failed`. From the engine: `put` and `get` per pack,
`progress`, and finally `done` or `error`. Both ends are this program, yet a
frame missing a field is refused with one line naming it, not a KeyError
deep inside a job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pbackup.backup.snapshot import Locator, Snapshot
from p2pbackup.codec.packstore import PackReceipt
from p2pbackup.peer.contracts import Args, ContractError, strings

Frame = dict[str, Any]


def _field(frame: Args, name: str, kind: type | tuple[type, ...]) -> Any:
    value = frame.get(name)
    if not isinstance(value, kind):
        raise ContractError(f"a {frame.get('op')!r} frame lacks a valid `{name}`")
    return value


# ---- the job, in the `start` frame -----------------------------------------


@dataclass(frozen=True)
class BackupJob:
    """Everything a backup child needs besides the keys."""

    catalog: Path
    paths: tuple[str, ...]
    host: str
    tags: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    parent: Snapshot | None = None
    parallel_uploads: int = 4

    def fields(self) -> Frame:
        return {
            "job": "backup",
            "catalog": str(self.catalog),
            "paths": list(self.paths),
            "host": self.host,
            "tags": list(self.tags),
            "excludes": list(self.excludes),
            "parent": self.parent.to_wire() if self.parent else None,
            "parallel_uploads": self.parallel_uploads,
        }

    @classmethod
    def of(cls, frame: Args) -> BackupJob:
        parent = frame.get("parent")
        return cls(
            Path(_field(frame, "catalog", str)),
            strings(frame, "paths"),
            _field(frame, "host", str),
            strings(frame, "tags"),
            strings(frame, "excludes"),
            Snapshot.from_wire(parent) if parent else None,
            _field(frame, "parallel_uploads", int),
        )


@dataclass(frozen=True)
class RestoreJob:
    """Everything a restore child needs besides the keys (see `RestoreEngine.run`)."""

    snapshot: Snapshot
    target: Path
    includes: tuple[str, ...] = ()
    index_blobs: tuple[Locator, ...] | None = None
    released: frozenset[bytes] = frozenset()

    def fields(self) -> Frame:
        blobs = self.index_blobs
        return {
            "job": "restore",
            "snapshot": self.snapshot.to_wire(),
            "target": str(self.target),
            "includes": list(self.includes),
            "index_blobs": None if blobs is None else [loc.to_wire() for loc in blobs],
            "released": sorted(self.released),
        }

    @classmethod
    def of(cls, frame: Args) -> RestoreJob:
        blobs = frame.get("index_blobs")
        return cls(
            Snapshot.from_wire(frame.get("snapshot")),
            Path(_field(frame, "target", str)),
            strings(frame, "includes"),
            None if blobs is None else tuple(Locator.from_wire(b) for b in blobs),
            frozenset(bytes(p) for p in _field(frame, "released", list)),
        )


Job = BackupJob | RestoreJob
_JOBS: dict[str, Callable[[Args], Job]] = {"backup": BackupJob.of, "restore": RestoreJob.of}


@dataclass(frozen=True)
class Start:
    """The first frame a child reads: the job and the master secret its keys come from."""

    master: bytes
    job: Job

    def encode(self) -> Frame:
        return {"op": "start", "master": self.master, **self.job.fields()}

    @classmethod
    def decode(cls, frame: Args) -> Start:
        if frame.get("op") != "start":
            raise ContractError(f"the engine process must start first, not {frame.get('op')!r}")
        parse = _JOBS.get(str(frame.get("job")))
        if parse is None:
            raise ContractError(f"the engine process cannot run {frame.get('job')!r}")
        return cls(bytes(_field(frame, "master", bytes)), parse(frame))


# ---- the engine asks, the peer answers --------------------------------------


@dataclass(frozen=True)
class Put:
    """A pack to place. Its bytes cross the pipe as the frame's tail (`FrameChannel`),
    and arrive in a bytearray: making them bytes would copy every pack once more."""

    id: int
    pack_id: bytes
    data: bytes | bytearray

    def encode(self) -> Frame:
        """The frame's map; `data` goes as its tail."""
        return {"op": "put", "pack_id": self.pack_id, "id": self.id}


@dataclass(frozen=True)
class Get:
    id: int
    pack_id: bytes
    size_hint: int = 0  # `PackStore.get`'s

    def encode(self) -> Frame:
        return {"op": "get", "pack_id": self.pack_id, "id": self.id, "size": self.size_hint}


@dataclass(frozen=True)
class Placed:
    id: int
    receipt: PackReceipt

    def encode(self) -> Frame:
        r = self.receipt
        receipt = [r.pack_id, r.k, r.n, r.placed, r.bytes_sent]
        return {"op": "placed", "receipt": receipt, "id": self.id}


@dataclass(frozen=True)
class PackData:
    """A fetched pack. Like a `Put`'s, its bytes cross the pipe as the frame's tail and
    arrive in a bytearray: inside the map, a restore copied every pack into the
    encoding on the peer's event loop, and three times more on the engine's side."""

    id: int
    data: bytes | bytearray

    def encode(self) -> Frame:
        """The frame's map; `data` goes as its tail."""
        return {"op": "pack", "id": self.id}


@dataclass(frozen=True)
class Failed:
    """The peer could not place or fetch the pack a request named."""

    id: int
    message: str

    def encode(self) -> Frame:
        return {"op": "failed", "message": self.message, "id": self.id}


Answer = Placed | PackData | Failed


# ---- the engine reports -------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """A job's progress counts."""

    stats: Mapping[str, Any]

    def encode(self) -> Frame:
        return {"op": "progress", "stats": dict(self.stats)}


@dataclass
class Outcome:
    """A job's last frame: `done` (with the snapshot a backup made) or `error`.

    `process` is the child's peak memory and CPU seconds, added as it ends: neither
    shows in the peer's own figures."""

    error: str | None = None  # None: done
    snapshot: Snapshot | None = None
    stats: Mapping[str, Any] | None = None
    process: Mapping[str, Any] | None = None
    # A bug's traceback, for the peer's log: the child's stderr may be nobody's.
    trace: str | None = None

    def encode(self) -> Frame:
        frame: Frame = {"op": "done" if self.error is None else "error"}
        if self.error is not None:
            frame["message"] = self.error
        if self.trace is not None:
            frame["trace"] = self.trace
        if self.snapshot is not None:
            frame["snapshot"] = self.snapshot.to_wire()
        for name, value in (("stats", self.stats), ("process", self.process)):
            if value is not None:
                frame[name] = dict(value)
        return frame


def decode_from_engine(frame: Args) -> Put | Get | Report | Outcome:
    """A frame the engine process sent; `ContractError` if it is none of its kinds."""
    op = frame.get("op")
    if op == "put":
        pack_id, data = _field(frame, "pack_id", bytes), _field(frame, "tail", (bytes, bytearray))
        return Put(_field(frame, "id", int), bytes(pack_id), data)
    if op == "get":
        pack_id, size = bytes(_field(frame, "pack_id", bytes)), _field(frame, "size", int)
        return Get(_field(frame, "id", int), pack_id, max(size, 0))
    if op == "progress":
        return Report(_field(frame, "stats", dict))
    if op in ("done", "error"):
        snapshot = frame.get("snapshot")
        return Outcome(
            None if op == "done" else str(frame.get("message")),
            Snapshot.from_wire(snapshot) if snapshot is not None else None,
            frame.get("stats") or {},
            frame.get("process") or {},
            str(frame["trace"]) if frame.get("trace") is not None else None,
        )
    raise ContractError(f"unexpected frame from the engine process: {op}")


def decode_from_peer(frame: Args) -> Answer:
    """An answer the peer sent; `ContractError` if it is none."""
    op, key = frame.get("op"), frame.get("id", -1)
    if op == "placed":
        pid, k, n, placed, sent = _field(frame, "receipt", list)
        return Placed(key, PackReceipt(bytes(pid), int(k), int(n), int(placed), int(sent)))
    if op == "pack":
        return PackData(key, _field(frame, "tail", (bytes, bytearray)))
    if op == "failed":
        return Failed(key, str(frame.get("message", "the peer could not do it")))
    raise ContractError(f"unexpected frame from the peer: {op}")
