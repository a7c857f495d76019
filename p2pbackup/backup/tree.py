"""Directory objects: what one folder held at backup time.

A tree lists its entries with names as raw bytes (any name a filesystem
allows, including non-UTF-8), modes, mtimes, sizes, and for each file the
ids of its chunks, for each folder the id of its own tree, for each symlink
its target. Trees are stored as chunks like file data, so they dedup and
are encrypted the same way.

Version 2 adds FIFOs, sockets and device nodes (with their device number),
hard links (entries of one inode share a link group, numbered per snapshot)
and extended attributes. A tree that uses none of these is still written as
version 1, byte for byte as before, so folders unchanged since an upgrade
dedup against what older versions saved (decision 0031).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

import cbor2

from p2pbackup.errors import WireError

TREE_VERSION = 2
CHUNK_ID_BYTES = 32
MAX_ENTRIES = 1_000_000
MAX_CHUNKS_PER_FILE = 10_000_000
# Linux caps a value at 64 KiB and a name at 255 bytes; the total keeps one
# hostile entry from costing a restore more than a quarter MiB.
MAX_XATTR_NAME = 255
MAX_XATTR_VALUE = 64 * 1024
MAX_XATTR_BYTES = 256 * 1024
MAX_LINK_GROUP = 2**32
MAX_DEVICE_PART = 2**32 - 1

Xattrs = tuple[tuple[bytes, bytes], ...]  # (name, value), sorted by name


class EntryKind(enum.IntEnum):
    FILE = 0
    DIR = 1
    SYMLINK = 2
    FIFO = 3
    SOCKET = 4
    CHAR_DEVICE = 5
    BLOCK_DEVICE = 6


DEVICES = frozenset({EntryKind.CHAR_DEVICE, EntryKind.BLOCK_DEVICE})
SPECIALS = frozenset({EntryKind.FIFO, EntryKind.SOCKET, *DEVICES})


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
    rdev: tuple[int, int] | None = None  # a device's (major, minor)
    link: int = 0  # its hard-link group in the snapshot; 0: none
    xattrs: Xattrs = ()

    @property
    def is_v1(self) -> bool:
        """Whether a version-1 tree could hold this entry."""
        return self.kind <= EntryKind.SYMLINK and not self.link and not self.xattrs

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
        elif self.kind is EntryKind.SYMLINK:
            out["target"] = self.target
        elif self.rdev is not None:
            out["rdev"] = list(self.rdev)
        if self.link:
            out["link"] = self.link
        if self.xattrs:
            out["xattrs"] = dict(sorted(self.xattrs))
        return out


_KINDS = {kind.value: kind for kind in EntryKind}
# Plain ints: comparing or hashing an enum member costs a Python call per entry.
_LAST_V1_KIND = int(EntryKind.SYMLINK)
_DEVICE_KINDS = frozenset(int(kind) for kind in DEVICES)
_FIELDS = frozenset(
    {"name", "kind", "mode", "mtime", "size", "chunks", "subtree", "target"}
    | {"rdev", "link", "xattrs"}
)
_MAX_NAME = 4096
_MAX_TARGET = 65536

# Entries are checked by hand rather than through `wire.schema`: a restore decodes
# every entry of every folder, and the generic checks (a closure call, a try and a
# dict per field) took a seventh of a restore of 8,000 small files. `type(x) is int`
# refuses booleans, as the schema's checks do.


# A frozen dataclass's __init__ sets each field through object.__setattr__; with the
# fields of version 2 that was a third of an entry's decoding. The checked values
# go straight into the new entry's __dict__ instead: a field added to TreeEntry
# must be set there too.
_new_entry = object.__new__


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


def _xattrs(value: Any) -> Xattrs:
    if type(value) is not dict or not value:
        raise WireError("field 'xattrs': expected a non-empty map")
    total = 0
    for name, data in value.items():
        if type(name) is not bytes or not 0 < len(name) <= MAX_XATTR_NAME or b"\0" in name:
            raise WireError(f"an extended attribute name is 1 to {MAX_XATTR_NAME} bytes, no NUL")
        if type(data) is not bytes or len(data) > MAX_XATTR_VALUE:
            raise WireError(f"an extended attribute value is at most {MAX_XATTR_VALUE} bytes")
        total += len(name) + len(data)
    if total > MAX_XATTR_BYTES:
        raise WireError(f"extended attributes over {MAX_XATTR_BYTES} bytes")
    return tuple(sorted(value.items()))


def _rdev(value: Any) -> tuple[int, int]:
    if type(value) is not list or len(value) != 2:
        raise WireError("field 'rdev': expected [major, minor]")
    major, minor = value
    return (
        _int_field(major, "rdev", 0, MAX_DEVICE_PART),
        _int_field(minor, "rdev", 0, MAX_DEVICE_PART),
    )


def _v2_fields(entry: TreeEntry, value: dict[Any, Any]) -> TreeEntry:
    """The checked version-2 fields of an entry that has some."""
    rdev_value, link, xattrs = value.get("rdev"), value.get("link"), value.get("xattrs")
    if (rdev_value is not None) != (entry.kind in DEVICES):
        raise WireError("a device entry, and only one, has field 'rdev'")
    if link is not None and entry.kind is EntryKind.DIR:
        raise WireError("a folder cannot be hard-linked")
    return dataclasses.replace(
        entry,
        rdev=None if rdev_value is None else _rdev(rdev_value),
        link=0 if link is None else _int_field(link, "link", 1, MAX_LINK_GROUP),
        xattrs=() if xattrs is None else _xattrs(xattrs),
    )


def _entry_from_wire(value: Any, version: int) -> TreeEntry:
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
    if kind is None or (version == 1 and kind_value > _LAST_V1_KIND):
        raise WireError(f"field 'kind': {kind_value!r} is no kind of entry in this version")
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
    if kind_value > _LAST_V1_KIND and (chunks or subtree is not None or target is not None):
        raise WireError(f"a {kind.name.lower()} has no data, subtree or target")
    if kind is EntryKind.FILE and total != size:
        raise WireError("a file's chunk lengths do not add up to its size")
    entry = _new_entry(TreeEntry)
    entry.__dict__.update(
        name=name,
        kind=kind,
        mode=mode,
        mtime_ns=mtime,
        size=size,
        chunks=chunks,
        subtree=subtree,
        target=target,
        rdev=None,
        link=0,
        xattrs=(),
    )
    # Most entries have none of the version-2 fields: one length test skips them.
    if len(value) > 5 + (chunks_value is not None) + (subtree is not None) + (target is not None):
        if version == 1:
            raise WireError("a version-1 tree holds no hard links or extended attributes")
        entry = _v2_fields(entry, value)
    elif kind_value in _DEVICE_KINDS:
        raise WireError("a device entry, and only one, has field 'rdev'")
    return entry


@dataclass(frozen=True)
class Tree:
    entries: tuple[TreeEntry, ...]

    def encode(self) -> bytes:
        ordered = sorted(self.entries, key=lambda e: e.name)
        version = 1 if all(e.is_v1 for e in ordered) else TREE_VERSION
        return cbor2.dumps({"v": version, "entries": [e.to_wire() for e in ordered]})

    @classmethod
    def decode(cls, data: bytes) -> Tree:
        """Parse a tree; names that could escape a restore target are refused."""
        try:
            raw = cbor2.loads(data)
        except Exception as exc:
            raise WireError(f"undecodable tree: {type(exc).__name__}") from None
        version = raw.get("v") if isinstance(raw, dict) else None
        if type(version) is not int or not 1 <= version <= TREE_VERSION:
            raise WireError(f"not a tree of version 1 to {TREE_VERSION}")
        entries = raw.get("entries")
        if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
            raise WireError("tree entries missing or too many")
        parsed = tuple(_entry_from_wire(e, version) for e in entries)
        if len({e.name for e in parsed}) != len(parsed):
            raise WireError("tree has duplicate names")
        return cls(parsed)

    def get(self, name: bytes) -> TreeEntry | None:
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None
