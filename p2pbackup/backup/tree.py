"""Directory objects: what one folder held at backup time.

A tree lists its entries with names as raw bytes (any name a filesystem
allows, including non-UTF-8), modes, mtimes, sizes, and for each file the
ids of its chunks, for each folder the id of its own tree, for each symlink
its target. Trees are stored as chunks like file data, so they dedup and
are encrypted the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import cbor2

from p2pbackup.errors import WireError
from p2pbackup.wire.schema import bytes_field, check_fields, int_field, list_of, optional

TREE_VERSION = 1
CHUNK_ID_BYTES = 32
MAX_ENTRIES = 1_000_000
MAX_CHUNKS_PER_FILE = 10_000_000


class EntryKind(enum.IntEnum):
    FILE = 0
    DIR = 1
    SYMLINK = 2


@dataclass(frozen=True)
class TreeEntry:
    name: bytes
    kind: EntryKind
    mode: int
    mtime_ns: int
    size: int = 0
    chunks: tuple[tuple[bytes, int], ...] = ()  # (chunk id, plain length), in file order
    subtree: bytes | None = None
    target: bytes | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": int(self.kind),
            "mode": self.mode,
            "mtime": self.mtime_ns,
            "size": self.size,
        }
        if self.kind is EntryKind.FILE:
            out["chunks"] = [[cid, size] for cid, size in self.chunks]
        elif self.kind is EntryKind.DIR:
            out["subtree"] = self.subtree
        else:
            out["target"] = self.target
        return out


_CHUNK_ID = bytes_field(exact=CHUNK_ID_BYTES)
_CHUNK_SIZE = int_field(0, 2**32)


def _chunk_ref(value: Any) -> tuple[bytes, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise WireError("a chunk reference is [chunk id, length]")
    return _CHUNK_ID(value[0]), _CHUNK_SIZE(value[1])


_ENTRY_FIELDS = {
    "name": bytes_field(max_len=4096),
    "kind": int_field(0, len(EntryKind) - 1),
    "mode": int_field(0, 0o177777),
    "mtime": int_field(-(2**62), 2**62),
    "size": int_field(0, 2**62),
    "chunks": list_of(_chunk_ref, MAX_CHUNKS_PER_FILE),
    "subtree": optional(_CHUNK_ID),
    "target": optional(bytes_field(max_len=65536)),
}
_OPTIONAL = frozenset({"chunks", "subtree", "target"})


def _entry_from_wire(value: Any) -> TreeEntry:
    if not isinstance(value, dict):
        raise WireError("a tree entry must be a map")
    fields = check_fields(value, _ENTRY_FIELDS, _OPTIONAL)
    kind = EntryKind(fields["kind"])
    name = fields["name"]
    if not name or b"/" in name or name in (b".", b".."):
        raise WireError(f"unsafe entry name {name!r}")
    if kind is EntryKind.DIR and fields["subtree"] is None:
        raise WireError("a directory entry needs its subtree")
    if kind is EntryKind.SYMLINK and fields["target"] is None:
        raise WireError("a symlink entry needs its target")
    chunks = tuple(fields["chunks"] or ())
    if kind is EntryKind.FILE and sum(size for _, size in chunks) != fields["size"]:
        raise WireError("a file's chunk lengths do not add up to its size")
    return TreeEntry(
        name=name,
        kind=kind,
        mode=fields["mode"],
        mtime_ns=fields["mtime"],
        size=fields["size"],
        chunks=chunks,
        subtree=fields["subtree"],
        target=fields["target"],
    )


@dataclass(frozen=True)
class Tree:
    entries: tuple[TreeEntry, ...]

    def encode(self) -> bytes:
        ordered = sorted(self.entries, key=lambda e: e.name)
        return cbor2.dumps({"v": TREE_VERSION, "entries": [e.to_wire() for e in ordered]})

    @classmethod
    def decode(cls, data: bytes) -> Tree:
        """Parse a tree; names that could escape a restore target are refused."""
        try:
            raw = cbor2.loads(data)
        except Exception as exc:
            raise WireError(f"undecodable tree: {type(exc).__name__}") from None
        if not isinstance(raw, dict) or raw.get("v") != TREE_VERSION:
            raise WireError("not a version-1 tree")
        entries = raw.get("entries")
        if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
            raise WireError("tree entries missing or too many")
        parsed = tuple(_entry_from_wire(e) for e in entries)
        if len({e.name for e in parsed}) != len(parsed):
            raise WireError("tree has duplicate names")
        return cls(parsed)

    def get(self, name: bytes) -> TreeEntry | None:
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None
