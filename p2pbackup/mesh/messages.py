"""What members send each other about the mesh: roll sync, revocations, redeeming."""

from __future__ import annotations

from typing import Annotated

from p2pbackup.crypto.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from p2pbackup.mesh.certs import MAX_ITEM, MAX_NAME
from p2pbackup.mesh.roll import DIGEST_BYTES, MAX_ROLL_ITEMS
from p2pbackup.wire.messages import Message, MessageType, message
from p2pbackup.wire.schema import WireField, bytes_field, str_field

MAX_BOOTSTRAP = 16
# A revocation pushed on carries itself alone, but a few may travel together.
MAX_PUSHED = 16

Items = Annotated[tuple[bytes, ...], WireField(bytes_field(max_len=MAX_ITEM)).many(MAX_ROLL_ITEMS)]


@message(MessageType.ROLL_ASK)
class RollAsk(Message):
    """My roll has this digest: send me yours unless it has the same."""

    digest: Annotated[bytes, bytes_field(exact=DIGEST_BYTES)]


@message(MessageType.ROLL_ITEMS)
class RollItems(Message):
    """A roll's items (none when the asker's digest was ours)."""

    items: Items


@message(MessageType.ROLL_PUSH)
class RollPush(Message):
    """Items new to the sender (a revocation, at once): keep them and push them on once."""

    items: Annotated[tuple[bytes, ...], WireField(bytes_field(max_len=MAX_ITEM)).many(MAX_PUSHED)]


@message(MessageType.REDEEM_INVITE)
class RedeemInvite(Message):
    """The one request a joiner may make: its member key, name and binding for a certificate."""

    member: Annotated[bytes, bytes_field(exact=PUBLIC_KEY_BYTES)]
    name: Annotated[str, str_field(MAX_NAME)]
    binding: Annotated[bytes, bytes_field(exact=SIGNATURE_BYTES)]


@message(MessageType.INVITE_REDEEMED)
class InviteRedeemed(Message):
    """The newcomer's certificate, the roll, and addresses of members to start from."""

    certificate: Annotated[bytes, bytes_field(max_len=MAX_ITEM)]
    items: Items
    bootstrap: Annotated[tuple[str, ...], WireField(str_field(300)).many(MAX_BOOTSTRAP)]


MESH_REQUESTS = (RollAsk, RollPush, RedeemInvite)
# All a remote that only holds an invite may ask.
JOINER_REQUESTS = frozenset({RedeemInvite})
