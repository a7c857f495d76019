"""Messages every layer may answer with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from p2pbackup.wire.messages import Message, MessageType, register
from p2pbackup.wire.schema import str_field


@register
@dataclass(frozen=True)
class ErrorReply(Message):
    """A request was understood but refused; `reason` is for the caller's log or user."""

    TYPE = MessageType.ERROR

    reason: Annotated[str, str_field(1000)]
