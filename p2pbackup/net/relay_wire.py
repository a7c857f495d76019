"""What relays and the peers they serve say to each other (decision 0040).

Requests go over ordinary authenticated connections; a refusal is an
`ErrorReply` with its reason. The session itself is not a message: it is a
fresh TCP connection to the relay whose first bytes are `SESSION_MAGIC` and
the token, after which the relay answers one status byte and then carries
bytes both ways unread.
"""

from __future__ import annotations

from typing import Annotated

from p2pbackup.crypto.identity import NODE_ID_BYTES
from p2pbackup.wire.messages import Message, MessageType, message
from p2pbackup.wire.schema import WireField, bytes_field, int_field, str_field

TOKEN_BYTES = 32
# Read as a frame length these four bytes exceed any frame limit, so no
# handshake ever starts with them: a listener tells the two apart by them.
SESSION_MAGIC = b"RLY\x01"
SESSION_OPENING = len(SESSION_MAGIC) + TOKEN_BYTES
# The status byte a relay sends each end once both arrived; it closes instead to refuse.
PAIRED = b"+"

NodeId = Annotated[bytes, bytes_field(exact=NODE_ID_BYTES)]
Token = Annotated[bytes, bytes_field(exact=TOKEN_BYTES)]
# 'HOST:PORT' where a side will try a hole punch from (decision 0040); absent: no punch.
MAX_PUNCH_ADDRESSES = 4
Punch = Annotated[
    tuple[str, ...] | None, WireField(str_field(300)).many(MAX_PUNCH_ADDRESSES).or_none()
]


@message(MessageType.RELAY_RESERVE)
class RelayReserve(Message):
    """Keep my connection as a way for others to reach me; asked again to renew."""


@message(MessageType.RELAY_RESERVED)
class RelayReserved(Message):
    """Granted: the reservation lasts `ttl` seconds unless renewed."""

    ttl: Annotated[int, int_field(1, 86400)]


@message(MessageType.RELAY_CONNECT)
class RelayConnect(Message):
    """Open a session to `target`, a peer holding a reservation here; with `punch`,
    the asker will also try a direct connection from those addresses."""

    target: NodeId
    punch: Punch = None


@message(MessageType.RELAY_SESSION)
class RelaySession(Message):
    """The session's token: open a new connection here and send it first; `punch`
    passes on the target's addresses for a direct try, if it offered them."""

    token: Token
    punch: Punch = None


@message(MessageType.RELAY_INCOMING)
class RelayIncoming(Message):
    """Sent by a relay over the reservation: `source` wants a session; come with `token`."""

    token: Token
    source: NodeId
    punch: Punch = None


@message(MessageType.RELAY_ACCEPTED)
class RelayAccepted(Message):
    """The reserved peer will come to the session (after trying a punch from `punch`)."""

    punch: Punch = None


RELAY_SERVER_REQUESTS: tuple[type[Message], ...] = (RelayReserve, RelayConnect)
RELAY_CLIENT_REQUESTS: tuple[type[Message], ...] = (RelayIncoming,)
