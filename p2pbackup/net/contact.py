"""How to reach a peer: its node id and the address it listens on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2pbackup.crypto.identity import NODE_ID_BYTES
from p2pbackup.errors import WireError
from p2pbackup.wire.schema import Check, bytes_field, int_field, map_of, str_field


@dataclass(frozen=True, slots=True)
class Contact:
    node_id: bytes
    host: str
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __str__(self) -> str:
        return f"{self.node_id.hex()[:12]}@{self.host}:{self.port}"

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.node_id, "host": self.host, "port": self.port}

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> Contact:
        return cls(value["id"], value["host"], value["port"])


_CONTACT_SLOW: Check = map_of(
    {"id": bytes_field(exact=NODE_ID_BYTES), "host": str_field(253), "port": int_field(0, 65535)}
)


def CONTACT_CHECK(value: Any) -> dict[str, Any]:
    """Contacts arrive by the dozen in every lookup reply, so the valid case is checked inline."""
    if (
        type(value) is dict
        and len(value) == 3
        and type(value.get("id")) is bytes
        and len(value["id"]) == NODE_ID_BYTES
        and type(value.get("host")) is str
        and len(value["host"]) <= 253
        and type(value.get("port")) is int
        and 0 <= value["port"] <= 65535
    ):
        return value
    return _CONTACT_SLOW(value)  # raises the precise WireError


def parse_address(text: str, *, any_port: bool = False) -> tuple[str, int]:
    """'HOST:PORT' to a tuple; raises `ValueError` with a readable reason.

    With `any_port`, port 0 is allowed: a listener then takes a free port.
    """
    host, sep, port = text.rpartition(":")
    lowest = 0 if any_port else 1
    if not sep or not host or not port.isdigit() or not lowest <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


__all__ = ["CONTACT_CHECK", "Contact", "WireError", "parse_address"]
