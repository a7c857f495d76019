"""Typed messages and their CBOR encoding.

Each message is a frozen dataclass declared with `@message(MessageType.X)`;
every field is declared once, its strict check riding in its annotation
(`Annotated[bytes, bytes_field(exact=20)]`, or a `WireField` for a nested
object), and registration reads those into the schema that encoding and
decoding follow. Layers declare their own messages and register them here;
`decode_message` refuses anything unregistered or off-schema with a
`WireError` and nothing else, whatever the bytes. A field declared with the
default None is left out of the map while it is None, so a message gains
an optional field without changing the bytes it is sent as without it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import (
    Annotated,
    Any,
    ClassVar,
    TypeVar,
    dataclass_transform,
    get_args,
    get_origin,
    get_type_hints,
)

from p2pbackup.errors import WireError
from p2pbackup.wire.big_bytes import Buffer, dumps_map
from p2pbackup.wire.schema import Check, WireField, check_fields, int_field, load_map

REQUEST_ID_MAX = 2**32 - 1


class MessageType(enum.StrEnum):
    # dht
    PING = "ping"
    PONG = "pong"
    FIND_NODE = "find_node"
    NODES = "nodes"
    STORE_RECORD = "store_record"
    STORED = "stored"
    GET_RECORD = "get_record"
    RECORD = "record"
    # store
    PUT_SHARE = "put_share"
    SHARE_STORED = "share_stored"
    GET_SHARE = "get_share"
    SHARE = "share"
    NO_SHARE = "no_share"
    # maintenance
    QUERY_SHARE = "query_share"
    SHARE_HELD = "share_held"
    AUDIT = "audit"
    AUDIT_PROOF = "audit_proof"
    # leases
    RENEW_LEASE = "renew_lease"
    LEASE_RENEWED = "lease_renewed"
    RELEASE_SHARE = "release_share"
    SHARE_RELEASED = "share_released"
    # reachability
    ANNOUNCE = "announce"
    DIAL_ME_BACK = "dial_me_back"
    DIALLED_BACK = "dialled_back"
    # mesh membership
    ROLL_ASK = "roll_ask"
    ROLL_ITEMS = "roll_items"
    ROLL_PUSH = "roll_push"
    REDEEM_INVITE = "redeem_invite"
    INVITE_REDEEMED = "invite_redeemed"
    # relays
    RELAY_RESERVE = "relay_reserve"
    RELAY_RESERVED = "relay_reserved"
    RELAY_CONNECT = "relay_connect"
    RELAY_SESSION = "relay_session"
    RELAY_INCOMING = "relay_incoming"
    RELAY_ACCEPTED = "relay_accepted"
    # any layer
    ERROR = "error"


class Message:
    """Base of every message; subclasses are declared with `@message(...)`."""

    TYPE: ClassVar[MessageType]
    # Derived by `register` from the field annotations, in field order.
    WIRE_FIELDS: ClassVar[tuple[tuple[str, WireField], ...]] = ()
    CHECKS: ClassVar[dict[str, Check]] = {}
    # Fields declared `= None`: absent from the map while None.
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def to_wire(self) -> dict[str, Any]:
        """CBOR-ready fields, in declaration order."""
        return {
            name: field.encode(value)
            for name, field in self.WIRE_FIELDS
            if (value := getattr(self, name)) is not None or name not in self.OPTIONAL
        }

    @classmethod
    def from_wire(cls, checked: dict[str, Any]) -> Message:
        """Build from fields that already passed the schema."""
        return cls(**{name: field.decode(checked[name]) for name, field in cls.WIRE_FIELDS})


M = TypeVar("M", bound=type[Message])
_REGISTRY: dict[str, type[Message]] = {}


def register(cls: M) -> M:
    """Admit a message type, reading each field's check from its annotation."""
    hints = get_type_hints(cls, include_extras=True)
    wire_fields = tuple(
        (f.name, _declared(cls, f.name, hints[f.name]))
        for f in dataclass_fields(cls)  # type: ignore[arg-type]
    )
    if cls.TYPE.value in _REGISTRY:
        raise RuntimeError(f"message type {cls.TYPE} registered twice")
    cls.WIRE_FIELDS = wire_fields
    cls.CHECKS = {name: field.check for name, field in wire_fields}
    cls.OPTIONAL = frozenset(
        f.name
        for f in dataclass_fields(cls)  # type: ignore[arg-type]
        if f.default is None
    )
    _REGISTRY[cls.TYPE.value] = cls
    return cls


@dataclass_transform(frozen_default=True)
def message(kind: MessageType) -> Callable[[M], M]:
    """Declare a message of `kind`: a frozen dataclass, registered for decoding."""

    def declare(cls: M) -> M:
        cls.TYPE = kind
        dataclass(frozen=True)(cls)  # fills in the class itself (no slots)
        return register(cls)

    return declare


def _declared(cls: type[Message], name: str, hint: Any) -> WireField:
    """The one check (or `WireField`) in a field's `Annotated` type."""
    declared = get_args(hint)[1:] if get_origin(hint) is Annotated else ()
    if len(declared) == 1 and isinstance(declared[0], WireField):
        return declared[0]
    if len(declared) == 1 and callable(declared[0]):
        return WireField(declared[0])
    raise RuntimeError(f"{cls.__name__}.{name} needs one check in Annotated[type, check]")


_REQUEST_ID = int_field(0, REQUEST_ID_MAX)


def encode_message(request_id: int, message: Message) -> bytes:
    body = message.to_wire()
    body["t"] = message.TYPE.value
    body["id"] = request_id
    return dumps_map(body)


def decode_message(payload: Buffer) -> tuple[int, Message]:
    """Parse and check one frame's payload (which may be a view); raises only `WireError`.

    A big byte string stays a view of `payload` only in a field declared to take one
    (`bytes_field(view=True)`): a holder writes a share straight from its frame."""
    raw = load_map(payload, "message", undecodable="CBOR", views=True)
    kind = raw.pop("t", None)
    if not isinstance(kind, str):
        raise WireError("message has no type")
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise WireError(f"unknown message type {kind[:40]!r}")
    if "id" not in raw:
        raise WireError("message has no request id")
    request_id = _REQUEST_ID(raw.pop("id"))
    checked = check_fields(raw, cls.CHECKS, cls.OPTIONAL)
    try:
        return request_id, cls.from_wire(checked)
    except WireError:
        raise
    except (ValueError, TypeError) as exc:
        raise WireError(f"{kind}: {exc}") from None


def registered_types() -> frozenset[str]:
    return frozenset(_REGISTRY)
