"""NAT-PMP (RFC 6886): ask the home router for its external address and a TCP mapping.

The codec is sans-IO: requests are bytes out, replies are bytes in, checked
before use (a reply of the wrong size, version or opcode is refused). The
small client sends them over a trio UDP socket to the default gateway, with
the RFC's doubling retransmission, all under the caller's timeout. No
maintained Python library offers this without blocking (decision 0038).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

import trio

from p2pbackup.errors import P2PBackupError

PORT = 5351
VERSION = 0
OP_EXTERNAL = 0
OP_MAP_TCP = 2
REPLY = 128
# The RFC's first retransmission interval; it doubles after each silent try.
FIRST_WAIT = 0.25
TRIES = 4
RESULTS = {
    1: "unsupported version",
    2: "not authorized or refused",
    3: "network failure",
    4: "out of resources",
    5: "unsupported opcode",
}


class NatPmpError(P2PBackupError):
    """The router answered with an error, or with something that is not NAT-PMP."""


@dataclass(frozen=True)
class MapReply:
    epoch: int  # the router's seconds since its mapping table started
    internal_port: int
    external_port: int
    lifetime: int


def external_request() -> bytes:
    return struct.pack("!BB", VERSION, OP_EXTERNAL)


def map_request(internal_port: int, external_port: int, lifetime: int) -> bytes:
    """A TCP mapping request; lifetime 0 with external port 0 removes the mapping."""
    return struct.pack("!BBHHHI", VERSION, OP_MAP_TCP, 0, internal_port, external_port, lifetime)


def _header(data: bytes, size: int, opcode: int) -> tuple[int, int]:
    """The result code and epoch of a reply to `opcode` of `size` bytes, checked."""
    if len(data) != size:
        raise NatPmpError(f"NAT-PMP reply of {len(data)} bytes, expected {size}")
    version, op, result, epoch = struct.unpack("!BBHI", data[:8])
    if version != VERSION or op != REPLY + opcode:
        raise NatPmpError(f"not a NAT-PMP reply to opcode {opcode} (version {version}, op {op})")
    if result != 0:
        reason = RESULTS.get(result, f"result code {result}")
        raise NatPmpError(f"the router refused: {reason}")
    return result, epoch


def parse_external(data: bytes) -> str:
    """The external IPv4 address in a reply to `external_request`."""
    _header(data, 12, OP_EXTERNAL)
    return str(ipaddress.IPv4Address(data[8:12]))


def parse_map(data: bytes) -> MapReply:
    _, epoch = _header(data, 16, OP_MAP_TCP)
    internal, external, lifetime = struct.unpack("!HHI", data[8:16])
    return MapReply(epoch, internal, external, lifetime)


def default_gateway(route_table: str) -> str | None:
    """The IPv4 default gateway in the text of /proc/net/route, if there is one."""
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 3 or fields[1] != "00000000":
            continue
        try:
            raw = int(fields[2], 16)
        except ValueError:
            continue
        if raw:
            return str(ipaddress.IPv4Address(raw.to_bytes(4, "little")))
    return None


async def exchange(gateway: str, request: bytes, *, port: int = PORT) -> bytes:
    """Send `request` to the router and return its first answer; the RFC's doubling
    retransmission, `TRIES` times. The caller bounds the whole under its timeout."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock:
        await sock.connect((gateway, port))  # only the router's answers are let in
        wait = FIRST_WAIT
        for _ in range(TRIES):
            await sock.send(request)
            with trio.move_on_after(wait):
                return await sock.recv(64)
            wait *= 2
    raise NatPmpError(f"no NAT-PMP answer from {gateway}")


class NatPmpGateway:
    """The router as NAT-PMP offers it: one TCP mapping at a time, for this host."""

    protocol = "natpmp"

    def __init__(self, gateway: str, *, port: int = PORT) -> None:
        self.gateway = gateway
        self.port = port

    async def external_address(self) -> str:
        return parse_external(await exchange(self.gateway, external_request(), port=self.port))

    async def map(
        self, internal: tuple[str, int], external_port: int, lease: int
    ) -> tuple[int, int]:
        """Map `external_port` (a wish: the router may give another) to this host's
        `internal` port; the port granted and the lease in seconds."""
        request = map_request(internal[1], external_port, lease)
        reply = parse_map(await exchange(self.gateway, request, port=self.port))
        if reply.internal_port != internal[1] or reply.lifetime == 0:
            raise NatPmpError(f"the router mapped port {reply.internal_port}, not {internal[1]}")
        return reply.external_port, reply.lifetime

    async def is_mapped(self, internal: tuple[str, int], external_port: int) -> bool:
        """NAT-PMP cannot ask: a renewal is a new request, which re-maps a forgotten one."""
        return True

    async def unmap(self, internal: tuple[str, int], external_port: int) -> None:
        parse_map(await exchange(self.gateway, map_request(internal[1], 0, 0), port=self.port))
