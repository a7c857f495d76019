"""Typed messages and their CBOR encoding.

Each message is a frozen dataclass with a `MessageType` and a schema of
strict field checks. Layers declare their own messages and register them
here; `decode_message` refuses anything unregistered or off-schema with a
`WireError` and nothing else, whatever the bytes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from typing import Any, ClassVar, TypeVar

import cbor2

from p2pbackup.errors import WireError
from p2pbackup.wire.schema import Check, check_fields, int_field

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
    # any layer
    ERROR = "error"


class Message:
    """Base of every message; subclasses are frozen dataclasses."""

    TYPE: ClassVar[MessageType]
    FIELDS: ClassVar[Mapping[str, Check]]
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def to_wire(self) -> dict[str, Any]:
        """Plain CBOR-ready fields; override when a field is a nested object."""
        return {f.name: getattr(self, f.name) for f in dataclass_fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_wire(cls, checked: dict[str, Any]) -> Message:
        """Build from fields that already passed the schema."""
        return cls(**checked)


M = TypeVar("M", bound=type[Message])
_REGISTRY: dict[str, type[Message]] = {}


def register(cls: M) -> M:
    if cls.TYPE.value in _REGISTRY:
        raise RuntimeError(f"message type {cls.TYPE} registered twice")
    _REGISTRY[cls.TYPE.value] = cls
    return cls


_REQUEST_ID = int_field(0, REQUEST_ID_MAX)


def encode_message(request_id: int, message: Message) -> bytes:
    body = message.to_wire()
    body["t"] = message.TYPE.value
    body["id"] = request_id
    return cbor2.dumps(body)


def decode_message(payload: bytes) -> tuple[int, Message]:
    """Parse and check one frame's payload; raises only `WireError`."""
    try:
        raw = cbor2.loads(payload)
    except Exception as exc:  # cbor2 raises many types on garbage; all mean the same here
        raise WireError(f"undecodable CBOR: {type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise WireError(f"a message must be a map, got {type(raw).__name__}")
    kind = raw.pop("t", None)
    if not isinstance(kind, str):
        raise WireError("message has no type")
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise WireError(f"unknown message type {kind[:40]!r}")
    if "id" not in raw:
        raise WireError("message has no request id")
    request_id = _REQUEST_ID(raw.pop("id"))
    checked = check_fields(raw, cls.FIELDS, cls.OPTIONAL)
    try:
        return request_id, cls.from_wire(checked)
    except WireError:
        raise
    except (ValueError, TypeError) as exc:
        raise WireError(f"{kind}: {exc}") from None


def registered_types() -> frozenset[str]:
    return frozenset(_REGISTRY)
