"""Signed mutable records stored in the DHT.

A record belongs to an owner key and a name; its DHT key is derived from both,
so nobody else can write under it. Two kinds exist:

* VALUE: one signed entry; the highest sequence number wins.
* SET: a union of individually signed entries. Replicas and readers merge by
  union without the owner's key, so two devices of one owner writing at once
  lose nothing (the owner's snapshot index is such a set).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import cbor2
from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from p2pbackup.crypto.identity import (
    NODE_ID_BYTES,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    Identity,
    verify_signature,
)
from p2pbackup.errors import RecordRejected, WireError
from p2pbackup.wire.schema import Check, bytes_field, int_field, list_of, map_of

MAX_NAME = 64
MAX_VALUE = 64 * 1024
MAX_SET_ENTRIES = 4096
MAX_RECORD_BYTES = 2 * 1024 * 1024
_DOMAIN = b"p2pbackup-record-v1"


class RecordKind(enum.IntEnum):
    VALUE = 0
    SET = 1


def record_key(owner: bytes, name: bytes) -> bytes:
    """The DHT key a record lives under: the owner cannot pick its neighbours."""
    return blake2b(_DOMAIN + owner + name, digest_size=NODE_ID_BYTES, encoder=RawEncoder)


def _signed_payload(owner: bytes, name: bytes, kind: RecordKind, seq: int, value: bytes) -> bytes:
    return cbor2.dumps([_DOMAIN, owner, name, int(kind), seq, value])


@dataclass(frozen=True, slots=True)
class SignedEntry:
    seq: int
    value: bytes
    signature: bytes


@dataclass(frozen=True)
class Record:
    owner: bytes
    name: bytes
    kind: RecordKind
    entries: tuple[SignedEntry, ...]

    @property
    def key(self) -> bytes:
        return record_key(self.owner, self.name)

    @property
    def seq(self) -> int:
        return max(e.seq for e in self.entries)

    @property
    def value(self) -> bytes:
        """The value of a VALUE record."""
        return self.entries[0].value

    @property
    def values(self) -> frozenset[bytes]:
        return frozenset(e.value for e in self.entries)

    def check(self) -> None:
        """Raise `RecordRejected` unless every entry is signed by the owner and in bounds."""
        if len(self.owner) != PUBLIC_KEY_BYTES:
            raise RecordRejected("record owner is not a public key")
        if not 0 < len(self.name) <= MAX_NAME:
            raise RecordRejected("record name is empty or too long")
        if not self.entries:
            raise RecordRejected("record has no entries")
        if self.kind is RecordKind.VALUE and len(self.entries) != 1:
            raise RecordRejected("a value record has exactly one entry")
        if len(self.entries) > MAX_SET_ENTRIES:
            raise RecordRejected(f"record has over {MAX_SET_ENTRIES} entries")
        if sum(len(e.value) for e in self.entries) > MAX_RECORD_BYTES:
            raise RecordRejected("record is too large")
        for entry in self.entries:
            payload = _signed_payload(self.owner, self.name, self.kind, entry.seq, entry.value)
            if not verify_signature(self.owner, payload, entry.signature):
                raise RecordRejected("record signature does not verify")

    def is_valid(self) -> bool:
        try:
            self.check()
        except RecordRejected:
            return False
        return True

    def to_wire(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "name": self.name,
            "kind": int(self.kind),
            "entries": [[e.seq, e.value, e.signature] for e in self.entries],
        }

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> Record:
        entries = tuple(SignedEntry(*e) for e in value["entries"])
        return cls(value["owner"], value["name"], RecordKind(value["kind"]), entries)


def _entry_check(value: Any) -> list[Any]:
    seq_check = int_field(0, 2**63 - 1)
    value_check = bytes_field(max_len=MAX_VALUE)
    sig_check = bytes_field(exact=SIGNATURE_BYTES)
    if not isinstance(value, list) or len(value) != 3:
        raise WireError("a record entry is [seq, value, signature]")
    items = value
    return [seq_check(items[0]), value_check(items[1]), sig_check(items[2])]


RECORD_CHECK: Check = map_of(
    {
        "owner": bytes_field(exact=PUBLIC_KEY_BYTES),
        "name": bytes_field(max_len=MAX_NAME),
        "kind": int_field(0, len(RecordKind) - 1),
        "entries": list_of(_entry_check, MAX_SET_ENTRIES),
    }
)


def sign_entry(
    identity: Identity, name: bytes, kind: RecordKind, seq: int, value: bytes
) -> SignedEntry:
    payload = _signed_payload(identity.public_key, name, kind, seq, value)
    return SignedEntry(seq, value, identity.sign(payload))


def value_record(identity: Identity, name: bytes, seq: int, value: bytes) -> Record:
    entry = sign_entry(identity, name, RecordKind.VALUE, seq, value)
    return Record(identity.public_key, name, RecordKind.VALUE, (entry,))


def set_record(identity: Identity, name: bytes, values: list[bytes], seq: int = 0) -> Record:
    entries = tuple(sign_entry(identity, name, RecordKind.SET, seq, v) for v in values)
    return Record(identity.public_key, name, RecordKind.SET, entries)


def _entry_order(entry: SignedEntry) -> tuple[int, bytes]:
    return (entry.seq, entry.signature)


def merge(current: Record | None, incoming: Record) -> Record:
    """The record a replica or reader should hold after seeing both (both already checked)."""
    if current is None:
        return incoming
    if current.owner != incoming.owner or current.name != incoming.name:
        raise RecordRejected("records of different keys cannot merge")
    if current.kind is not incoming.kind:
        raise RecordRejected("record kind changed")
    if incoming.kind is RecordKind.VALUE:
        newer = _entry_order(incoming.entries[0]) > _entry_order(current.entries[0])
        return incoming if newer else current
    by_value = {e.value: e for e in current.entries}
    for entry in incoming.entries:
        known = by_value.get(entry.value)
        if known is None or _entry_order(entry) > _entry_order(known):
            by_value[entry.value] = entry
    if len(by_value) > MAX_SET_ENTRIES:
        raise RecordRejected(f"merged record would exceed {MAX_SET_ENTRIES} entries")
    entries = tuple(sorted(by_value.values(), key=lambda e: (e.seq, e.value)))
    return Record(current.owner, current.name, current.kind, entries)


def covers(held: Record | None, other: Record) -> bool:
    """True when `held` already says everything `other` says (no repair needed)."""
    if held is None:
        return False
    return set(merge(held, other).entries) == set(held.entries)


def accept(stored: Record | None, incoming: Record) -> Record:
    """What a replica stores after a write; raises `RecordRejected` for forged or older writes."""
    incoming.check()
    if (
        stored is not None
        and incoming.kind is RecordKind.VALUE
        and stored.kind is RecordKind.VALUE
        and _entry_order(incoming.entries[0]) < _entry_order(stored.entries[0])
    ):
        raise RecordRejected(f"older than the stored version (seq {incoming.seq} < {stored.seq})")
    return merge(stored, incoming)
