"""Messages every layer may answer with."""

from __future__ import annotations

from typing import Annotated

from p2pbackup.wire.messages import Message, MessageType, message
from p2pbackup.wire.schema import str_field


@message(MessageType.ERROR)
class ErrorReply(Message):
    """A request was understood but refused; `reason` is for the caller's log or user."""

    reason: Annotated[str, str_field(1000)]
