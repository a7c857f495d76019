"""DHT requests and replies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from p2pbackup.crypto.identity import NODE_ID_BYTES
from p2pbackup.dht.records import RECORD_CHECK, Record
from p2pbackup.net.contact import CONTACT_CHECK, Contact
from p2pbackup.wire.messages import Message, MessageType, register
from p2pbackup.wire.schema import WireField, bool_field, bytes_field, str_field

MAX_CONTACTS = 64
_RECORD = WireField(RECORD_CHECK, Record.to_wire, Record.from_wire)

NodeId = Annotated[bytes, bytes_field(exact=NODE_ID_BYTES)]
Contacts = Annotated[
    tuple[Contact, ...],
    WireField(CONTACT_CHECK, Contact.to_wire, Contact.from_wire).many(MAX_CONTACTS),
]


@register
@dataclass(frozen=True)
class Ping(Message):
    TYPE = MessageType.PING


@register
@dataclass(frozen=True)
class Pong(Message):
    TYPE = MessageType.PONG


@register
@dataclass(frozen=True)
class FindNode(Message):
    TYPE = MessageType.FIND_NODE

    target: NodeId


@register
@dataclass(frozen=True)
class Nodes(Message):
    TYPE = MessageType.NODES

    contacts: Contacts


@register
@dataclass(frozen=True)
class StoreRecord(Message):
    TYPE = MessageType.STORE_RECORD

    record: Annotated[Record, _RECORD]


@register
@dataclass(frozen=True)
class Stored(Message):
    """Reply to StoreRecord; a refusal carries its reason."""

    TYPE = MessageType.STORED

    ok: Annotated[bool, bool_field()]
    reason: Annotated[str, str_field(500)] = ""


@register
@dataclass(frozen=True)
class GetRecord(Message):
    TYPE = MessageType.GET_RECORD

    key: NodeId


@register
@dataclass(frozen=True)
class RecordReply(Message):
    """The replica's record for the key (or none) and closer contacts it knows."""

    TYPE = MessageType.RECORD

    record: Annotated[Record | None, _RECORD.or_none()]
    contacts: Contacts
