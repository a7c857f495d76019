"""How to reach a peer: its node id, its main address, and other routes to it.

The main address (`host`, `port`) is the one the mesh verifies and counts
per address block. `routes` are further ways to dial the same id, in the
peer's order of preference: an address on its own LAN, a mapped port, or a
relay that holds a connection to it (`Route.relay`). A peer nobody can dial
directly still names its main address (the one others see it from), so its
block is counted where it really is; its routes say how to reach it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from p2pbackup.base.ids import NODE_ID_BYTES
from p2pbackup.errors import WireError
from p2pbackup.wire.schema import Check, bytes_field, int_field, list_of, map_of, str_field

MAX_ROUTES = 8
_ROUTE_CHARS = 300
_RELAY_PREFIX = "relay:"


@dataclass(frozen=True, slots=True)
class Route:
    """One way to dial a peer: straight to `host:port`, or through the relay
    `relay` (a node id) listening at `host:port`."""

    host: str
    port: int
    relay: bytes | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __str__(self) -> str:
        where = format_address((self.host, self.port))
        return where if self.relay is None else f"{_RELAY_PREFIX}{self.relay.hex()}@{where}"

    @classmethod
    def parse(cls, text: str) -> Route:
        """The inverse of `str`; raises `WireError` on anything else."""
        relay: bytes | None = None
        rest = text
        if text.startswith(_RELAY_PREFIX):
            node, sep, rest = text[len(_RELAY_PREFIX) :].partition("@")
            try:
                relay = bytes.fromhex(node)
            except ValueError:
                relay = None
            if not sep or relay is None or len(relay) != NODE_ID_BYTES:
                raise WireError(f"malformed relay route {text[:80]!r}")
        try:
            host, port = parse_address(rest)
        except ValueError as exc:
            raise WireError(f"malformed route: {exc}") from None
        return cls(host, port, relay)


@dataclass(frozen=True, slots=True)
class Contact:
    node_id: bytes
    host: str
    port: int
    routes: tuple[Route, ...] = ()
    # Its address block under the exemptions last asked with (`blocks.block_of`): no part
    # of what a contact is, kept on it because lookups and tables ask all day.
    _block: tuple[frozenset[str], str] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __str__(self) -> str:
        return f"{self.node_id.hex()[:12]}@{format_address(self.address)}"

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"id": self.node_id, "host": self.host, "port": self.port}
        if self.routes:
            wire["r"] = [str(route) for route in self.routes]
        return wire

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> Contact:
        routes = value.get("r")
        if not routes:
            return cls(value["id"], value["host"], value["port"])
        return cls(value["id"], value["host"], value["port"], parse_routes(routes))

    def with_routes(self, routes: tuple[Route, ...]) -> Contact:
        return Contact(self.node_id, self.host, self.port, routes)


def parse_routes(texts: list[str]) -> tuple[Route, ...]:
    """Routes from their wire strings; raises `WireError` on a malformed one."""
    if len(texts) > MAX_ROUTES:
        raise WireError(f"{len(texts)} routes exceed the limit of {MAX_ROUTES}")
    return tuple(Route.parse(text) for text in texts)


_CONTACT_SLOW: Check = map_of(
    {
        "id": bytes_field(exact=NODE_ID_BYTES),
        "host": str_field(253),
        "port": int_field(0, 65535),
        "r": list_of(str_field(_ROUTE_CHARS), MAX_ROUTES),
    },
    optional_keys=frozenset({"r"}),
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
    checked = _CONTACT_SLOW(value)  # raises the precise WireError
    if "r" in checked:
        parse_routes(checked["r"])  # a malformed route fails the contact here
    return checked


def format_address(address: tuple[str, int]) -> str:
    """'HOST:PORT', with an IPv6 host in brackets."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str, *, any_port: bool = False) -> tuple[str, int]:
    """'HOST:PORT' (or '[IPV6]:PORT') to a tuple; raises `ValueError` with a readable reason.

    With `any_port`, port 0 is allowed: a listener then takes a free port.
    """
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"expected HOST:PORT (an IPv6 host in brackets), got {text!r}")
    lowest = 0 if any_port else 1
    if not sep or not host or not port.isdigit() or not lowest <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


__all__ = [
    "CONTACT_CHECK",
    "Contact",
    "Route",
    "WireError",
    "format_address",
    "parse_address",
    "parse_routes",
]
