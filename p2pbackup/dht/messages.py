"""DHT requests and replies."""

from __future__ import annotations

from typing import Annotated

from p2pbackup.crypto.identity import NODE_ID_BYTES
from p2pbackup.dht.records import RECORD_CHECK, Record
from p2pbackup.net.contact import CONTACT_CHECK, Contact
from p2pbackup.wire.messages import Message, MessageType, message
from p2pbackup.wire.schema import WireField, bool_field, bytes_field, str_field

MAX_CONTACTS = 64
_RECORD = WireField(RECORD_CHECK, Record.to_wire, Record.from_wire)

NodeId = Annotated[bytes, bytes_field(exact=NODE_ID_BYTES)]
Contacts = Annotated[
    tuple[Contact, ...],
    WireField(CONTACT_CHECK, Contact.to_wire, Contact.from_wire).many(MAX_CONTACTS),
]


@message(MessageType.PING)
class Ping(Message):
    """Still there? A full bucket asks its oldest contact before taking a newcomer."""


@message(MessageType.PONG)
class Pong(Message):
    """Still here: the answer is that a reply came at all."""


@message(MessageType.ANNOUNCE)
class Announce(Message):
    """Reach me here from now on: the sender's new main address and routes, a claim
    checked by dialling it like the one a handshake carries (answered by Pong)."""

    contact: Annotated[Contact, WireField(CONTACT_CHECK, Contact.to_wire, Contact.from_wire)]


@message(MessageType.FIND_NODE)
class FindNode(Message):
    target: NodeId


@message(MessageType.NODES)
class Nodes(Message):
    contacts: Contacts


@message(MessageType.STORE_RECORD)
class StoreRecord(Message):
    record: Annotated[Record, _RECORD]


@message(MessageType.STORED)
class Stored(Message):
    """Reply to StoreRecord; a refusal carries its reason."""

    ok: Annotated[bool, bool_field()]
    reason: Annotated[str, str_field(500)] = ""


@message(MessageType.GET_RECORD)
class GetRecord(Message):
    key: NodeId


@message(MessageType.RECORD)
class RecordReply(Message):
    """The replica's record for the key (or none) and closer contacts it knows."""

    record: Annotated[Record | None, _RECORD.or_none()]
    contacts: Contacts
