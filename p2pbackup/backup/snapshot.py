"""Snapshot records: what one backup run saved, as the owner's index lists it.

A snapshot names its root tree and the index blobs that map chunk ids to
pack locations. It is sealed with the owner's data key before it enters the
DHT: storage peers replicate the owner's snapshot index without learning
hosts, paths or tags. The DHT record signature covers the sealed bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import cbor2
from nacl.exceptions import CryptoError
from nacl.secret import Aead

from p2pbackup.base.ids import PACK_ID_BYTES
from p2pbackup.errors import P2PBackupError, WireError
from p2pbackup.wire import local_text
from p2pbackup.wire.schema import (
    bytes_field,
    check_fields,
    int_field,
    list_of,
    number_field,
    optional,
    str_field,
)

SNAPSHOT_INDEX_NAME = b"snapshots"
SNAPSHOT_ID_BYTES = 16
# Built once: a restore checks a locator per chunk of the index.
_PACK_ID = bytes_field(exact=PACK_ID_BYTES)
_OFFSET = int_field(0, 2**40)
_LENGTH = int_field(1, 2**40)
_SNAPSHOT_AAD = b"p2pbackup-snapshot-v1"
_FORGET_AAD = b"p2pbackup-forget-v1"
_RELEASED_AAD = b"p2pbackup-released-v1"
_REINDEX_AAD = b"p2pbackup-reindex-v1"
# Pack ids per released entry: 20 bytes each keeps an entry well under a record's 64 KiB.
RELEASED_PER_ENTRY = 2000
# Index blob locators per reindex entry: about 30 bytes each.
REINDEX_PER_ENTRY = 1000


@dataclass(frozen=True, slots=True)
class Locator:
    """Where one sealed chunk lies: inside which pack, at which offset, how long."""

    pack_id: bytes
    offset: int
    length: int

    def to_wire(self) -> list[Any]:
        return [self.pack_id, self.offset, self.length]

    @classmethod
    def from_wire(cls, value: Any) -> Locator:
        if not isinstance(value, list) or len(value) != 3:
            raise WireError("a locator is [pack id, offset, length]")
        return cls(_PACK_ID(value[0]), _OFFSET(value[1]), _LENGTH(value[2]))


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: bytes
    time: float
    host: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    parent: bytes | None
    tree: bytes
    index: tuple[Locator, ...]
    files: int
    size: int

    @property
    def short_id(self) -> str:
        return self.snapshot_id.hex()[:8]

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.snapshot_id,
            "time": self.time,
            "host": self.host,
            "paths": [_path_to_wire(p) for p in self.paths],
            "tags": list(self.tags),
            "parent": self.parent,
            "tree": self.tree,
            "index": [loc.to_wire() for loc in self.index],
            "files": self.files,
            "size": self.size,
        }

    @classmethod
    def from_wire(cls, raw: Any) -> Snapshot:
        """The snapshot `to_wire` gave; raises `WireError` on anything else."""
        if not isinstance(raw, dict):
            raise WireError("a snapshot must be a map")
        fields = check_fields(raw, _FIELDS)
        return cls(
            snapshot_id=fields["id"],
            time=fields["time"],
            host=fields["host"],
            paths=tuple(fields["paths"]),
            tags=tuple(fields["tags"]),
            parent=fields["parent"],
            tree=fields["tree"],
            index=tuple(fields["index"]),
            files=fields["files"],
            size=fields["size"],
        )

    def summary(self) -> dict[str, Any]:
        """What `snapshots --json` shows."""
        return {
            "id": self.snapshot_id.hex(),
            "short_id": self.short_id,
            "time": self.time,
            "host": self.host,
            "paths": list(self.paths),
            "tags": list(self.tags),
            "parent": self.parent.hex() if self.parent else None,
            "files": self.files,
            "bytes": self.size,
        }


def _path_to_wire(path: str) -> str | bytes:
    """A backed-up path as text, or as its raw bytes when it is not UTF-8 (a legacy
    name, held as surrogate escapes): CBOR text cannot carry those."""
    return path if local_text.utf8(path) else os.fsencode(path)


def _path_field(value: Any) -> str:
    if isinstance(value, bytes) and 0 < len(value) <= 4096:
        return os.fsdecode(value)
    return _PATH_TEXT(value)


_PATH_TEXT = str_field(4096)
_FIELDS = {
    "id": bytes_field(exact=SNAPSHOT_ID_BYTES),
    "time": number_field(0, 2**40),
    "host": str_field(255),
    "paths": list_of(_path_field, 10_000),
    "tags": list_of(str_field(255), 1000),
    "parent": optional(bytes_field(exact=SNAPSHOT_ID_BYTES)),
    "tree": bytes_field(exact=32),
    "index": list_of(Locator.from_wire, 100_000),
    "files": int_field(0, 2**62),
    "size": int_field(0, 2**62),
}


def seal_snapshot(snapshot: Snapshot, key: bytes) -> bytes:
    return Aead(key).encrypt(cbor2.dumps(snapshot.to_wire()), _SNAPSHOT_AAD)


def open_snapshot(sealed: bytes, key: bytes) -> Snapshot:
    """Decrypt and check one snapshot index entry; raises `P2PBackupError` if it is not ours."""
    try:
        plain = Aead(key).decrypt(sealed, _SNAPSHOT_AAD)
    except CryptoError:
        raise P2PBackupError("a snapshot entry does not decrypt with this owner's key") from None
    try:
        raw = cbor2.loads(plain)
    except Exception as exc:
        raise WireError(f"undecodable snapshot: {type(exc).__name__}") from None
    return Snapshot.from_wire(raw)


def _seal_entry(kind: str, value: Any, aad: bytes, key: bytes) -> bytes:
    """A snapshot-set entry of one kind: {kind: value}, sealed under the snapshot key."""
    return Aead(key).encrypt(cbor2.dumps({kind: value}), aad)


def _open_entry(sealed: bytes, key: bytes, kind: str, aad: bytes) -> Any:
    """The value of a sealed {kind: value} entry, or None if `sealed` is another kind
    of entry (its own associated data does not open) or not ours."""
    try:
        raw = cbor2.loads(Aead(key).decrypt(sealed, aad))
    except Exception:
        return None
    return raw.get(kind) if isinstance(raw, dict) else None


def seal_forget(snapshot_id: bytes, key: bytes) -> bytes:
    """A tombstone: the snapshot index is a grow-only set, so forgetting adds an entry."""
    return _seal_entry("forget", snapshot_id, _FORGET_AAD, key)


def open_forget(sealed: bytes, key: bytes) -> bytes | None:
    """The snapshot id a tombstone forgets, or None if `sealed` is not one of ours."""
    value = _open_entry(sealed, key, "forget", _FORGET_AAD)
    if not isinstance(value, bytes) or len(value) != SNAPSHOT_ID_BYTES:
        return None
    return value


def seal_released(pack_ids: list[bytes], key: bytes) -> bytes:
    """An entry naming packs a prune released: no device may dedup against them again."""
    return _seal_entry("released", pack_ids, _RELEASED_AAD, key)


def open_released(sealed: bytes, key: bytes) -> list[bytes] | None:
    """The pack ids a released entry names, or None if `sealed` is not one."""
    value = _open_entry(sealed, key, "released", _RELEASED_AAD)
    if not isinstance(value, list) or len(value) > RELEASED_PER_ENTRY:
        return None
    return [p for p in value if isinstance(p, bytes) and len(p) == PACK_ID_BYTES]


def seal_reindex(locators: list[Locator], key: bytes) -> bytes:
    """An entry naming index blobs every snapshot reads besides its own.

    A prune that repacks chunks writes their new locations into new index blobs;
    snapshots are immutable, so this entry is how the kept ones find them."""
    return _seal_entry("reindex", [loc.to_wire() for loc in locators], _REINDEX_AAD, key)


def open_reindex(sealed: bytes, key: bytes) -> list[Locator] | None:
    """The index blob locators a reindex entry names, or None if `sealed` is not one."""
    value = _open_entry(sealed, key, "reindex", _REINDEX_AAD)
    if not isinstance(value, list) or len(value) > REINDEX_PER_ENTRY:
        return None
    try:
        return [Locator.from_wire(item) for item in value]
    except WireError:
        return None
