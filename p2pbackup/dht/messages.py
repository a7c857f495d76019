"""DHT requests and replies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2pbackup.crypto.identity import NODE_ID_BYTES
from p2pbackup.dht.records import RECORD_CHECK, Record
from p2pbackup.net.contact import CONTACT_CHECK, Contact
from p2pbackup.wire.messages import Message, MessageType, register
from p2pbackup.wire.schema import bool_field, bytes_field, list_of, optional, str_field

MAX_CONTACTS = 64
_CONTACTS = list_of(CONTACT_CHECK, MAX_CONTACTS)


def _contacts_to_wire(contacts: tuple[Contact, ...]) -> list[dict[str, Any]]:
    return [c.to_wire() for c in contacts]


def _contacts_from_wire(value: list[dict[str, Any]]) -> tuple[Contact, ...]:
    return tuple(Contact.from_wire(c) for c in value)


@register
@dataclass(frozen=True)
class Ping(Message):
    TYPE = MessageType.PING
    FIELDS = {}


@register
@dataclass(frozen=True)
class Pong(Message):
    TYPE = MessageType.PONG
    FIELDS = {}


@register
@dataclass(frozen=True)
class FindNode(Message):
    TYPE = MessageType.FIND_NODE
    FIELDS = {"target": bytes_field(exact=NODE_ID_BYTES)}

    target: bytes


@register
@dataclass(frozen=True)
class Nodes(Message):
    TYPE = MessageType.NODES
    FIELDS = {"contacts": _CONTACTS}

    contacts: tuple[Contact, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"contacts": _contacts_to_wire(self.contacts)}

    @classmethod
    def from_wire(cls, checked: dict[str, Any]) -> Nodes:
        return cls(_contacts_from_wire(checked["contacts"]))


@register
@dataclass(frozen=True)
class StoreRecord(Message):
    TYPE = MessageType.STORE_RECORD
    FIELDS = {"record": RECORD_CHECK}

    record: Record

    def to_wire(self) -> dict[str, Any]:
        return {"record": self.record.to_wire()}

    @classmethod
    def from_wire(cls, checked: dict[str, Any]) -> StoreRecord:
        return cls(Record.from_wire(checked["record"]))


@register
@dataclass(frozen=True)
class Stored(Message):
    """Reply to StoreRecord; a refusal carries its reason."""

    TYPE = MessageType.STORED
    FIELDS = {"ok": bool_field(), "reason": str_field(500)}

    ok: bool
    reason: str = ""


@register
@dataclass(frozen=True)
class GetRecord(Message):
    TYPE = MessageType.GET_RECORD
    FIELDS = {"key": bytes_field(exact=NODE_ID_BYTES)}

    key: bytes


@register
@dataclass(frozen=True)
class RecordReply(Message):
    """The replica's record for the key (or none) and closer contacts it knows."""

    TYPE = MessageType.RECORD
    FIELDS = {"record": optional(RECORD_CHECK), "contacts": _CONTACTS}

    record: Record | None
    contacts: tuple[Contact, ...]

    def to_wire(self) -> dict[str, Any]:
        record = None if self.record is None else self.record.to_wire()
        return {"record": record, "contacts": _contacts_to_wire(self.contacts)}

    @classmethod
    def from_wire(cls, checked: dict[str, Any]) -> RecordReply:
        record = checked["record"]
        parsed = None if record is None else Record.from_wire(record)
        return cls(parsed, _contacts_from_wire(checked["contacts"]))
