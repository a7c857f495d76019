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


_KINDS = {kind.value: kind for kind in EntryKind}
_FIELDS = frozenset({"name", "kind", "mode", "mtime", "size", "chunks", "subtree", "target"})
_MAX_NAME = 4096
_MAX_TARGET = 65536

# Entries are checked by hand rather than through `wire.schema`: a restore decodes
# every entry of every folder, and the generic checks (a closure call, a try and a
# dict per field) took a seventh of a restore of 8,000 small files. `type(x) is int`
# refuses booleans, as the schema's checks do.


def _int_field(value: Any, name: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise WireError(f"field {name!r}: expected an integer in [{lo}, {hi}], got {value!r}")
    return value


def _chunk_refs(value: Any) -> tuple[tuple[tuple[bytes, int], ...], int]:
    """The references and the sum of their lengths."""
    if type(value) is not list or len(value) > MAX_CHUNKS_PER_FILE:
        raise WireError(f"field 'chunks': expected a list of at most {MAX_CHUNKS_PER_FILE}")
    refs = []
    total = 0
    for ref in value:
        if type(ref) is not list or len(ref) != 2:
            raise WireError("a chunk reference is [chunk id, length]")
        chunk_id, length = ref
        if type(chunk_id) is not bytes or len(chunk_id) != CHUNK_ID_BYTES:
            raise WireError(f"a chunk id is {CHUNK_ID_BYTES} bytes")
        total += _int_field(length, "chunks", 0, 2**32)
        refs.append((chunk_id, length))
    return tuple(refs), total


def _entry_from_wire(value: Any) -> TreeEntry:
    if type(value) is not dict:
        raise WireError("a tree entry must be a map")
    if not _FIELDS.issuperset(value):
        raise WireError(f"unknown field {next(k for k in value if k not in _FIELDS)!r}")
    try:
        name, kind_value = value["name"], value["kind"]
        mode, mtime, size = value["mode"], value["mtime"], value["size"]
    except KeyError as exc:
        raise WireError(f"missing field {exc.args[0]!r}") from None
    if type(name) is not bytes or len(name) > _MAX_NAME:
        raise WireError(f"field 'name': expected at most {_MAX_NAME} bytes")
    if not name or b"/" in name or name in (b".", b".."):
        raise WireError(f"unsafe entry name {name!r}")
    kind = _KINDS.get(kind_value) if type(kind_value) is int else None
    if kind is None:
        raise WireError(f"field 'kind': {kind_value!r} is no kind of entry")
    _int_field(mode, "mode", 0, 0o177777)
    _int_field(mtime, "mtime", -(2**62), 2**62)
    _int_field(size, "size", 0, 2**62)
    chunks_value, subtree, target = value.get("chunks"), value.get("subtree"), value.get("target")
    chunks, total = ((), 0) if chunks_value is None else _chunk_refs(chunks_value)
    if subtree is not None and (type(subtree) is not bytes or len(subtree) != CHUNK_ID_BYTES):
        raise WireError(f"field 'subtree': expected {CHUNK_ID_BYTES} bytes")
    if target is not None and (type(target) is not bytes or len(target) > _MAX_TARGET):
        raise WireError(f"field 'target': expected at most {_MAX_TARGET} bytes")
    if kind is EntryKind.DIR and subtree is None:
        raise WireError("a directory entry needs its subtree")
    if kind is EntryKind.SYMLINK and target is None:
        raise WireError("a symlink entry needs its target")
    if kind is EntryKind.FILE and total != size:
        raise WireError("a file's chunk lengths do not add up to its size")
    return TreeEntry(name, kind, mode, mtime, size, chunks, subtree, target)


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
