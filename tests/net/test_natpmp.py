"""NAT-PMP (RFC 6886): the codec, and the client against a scripted router on loopback."""

from __future__ import annotations

import struct

import pytest
import trio

from p2pbackup.net import natpmp
from p2pbackup.net.natpmp import NatPmpError, NatPmpGateway

ROUTE_TABLE = """\
Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	000AA8C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
eth0	00000000	010AA8C0	0003	0	0	0	00000000	0	0	0
"""


def test_requests_are_laid_out_as_the_rfc_says() -> None:
    assert natpmp.external_request() == b"\x00\x00"
    assert natpmp.map_request(7400, 7401, 3600) == bytes.fromhex("0002 0000 1ce8 1ce9 00000e10")
    assert natpmp.map_request(7400, 0, 0) == bytes.fromhex("0002 0000 1ce8 0000 00000000")


def test_replies_are_parsed_and_checked() -> None:
    external = struct.pack("!BBHI4s", 0, 128, 0, 77, bytes([11, 18, 2, 2]))
    assert natpmp.parse_external(external) == "11.18.2.2"
    mapped = struct.pack("!BBHIHHI", 0, 130, 0, 77, 7400, 7401, 60)
    assert natpmp.parse_map(mapped) == natpmp.MapReply(77, 7400, 7401, 60)
    with pytest.raises(NatPmpError, match="the router refused: not authorized or refused"):
        natpmp.parse_map(struct.pack("!BBHIHHI", 0, 130, 2, 77, 7400, 0, 0))
    with pytest.raises(NatPmpError, match="12 bytes, expected 16"):
        natpmp.parse_map(external)
    with pytest.raises(NatPmpError, match="not a NAT-PMP reply"):
        natpmp.parse_external(struct.pack("!BBHI4s", 1, 128, 0, 77, b"\0" * 4))
    with pytest.raises(NatPmpError, match="not a NAT-PMP reply"):
        natpmp.parse_map(struct.pack("!BBHIHHI", 0, 129, 0, 77, 7400, 7401, 60))  # UDP's


def test_the_default_gateway_is_read_from_the_route_table() -> None:
    assert natpmp.default_gateway(ROUTE_TABLE) == "192.168.10.1"
    assert natpmp.default_gateway(ROUTE_TABLE.splitlines()[0]) is None


async def _router(
    sock: trio.socket.SocketType, answers: list[bytes | None], seen: list[bytes]
) -> None:
    """Answer each datagram with the next of `answers` (None: stay silent)."""
    for answer in answers:
        data, source = await sock.recvfrom(64)
        seen.append(data)
        if answer is not None:
            await sock.sendto(answer, source)


async def _bound() -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    return sock


async def test_the_client_maps_retransmits_and_removes(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(natpmp, "FIRST_WAIT", 0.05)
    sock = await _bound()
    granted = struct.pack("!BBHIHHI", 0, 130, 0, 5, 7400, 7401, 60)
    removed = struct.pack("!BBHIHHI", 0, 130, 0, 6, 7400, 0, 0)
    external = struct.pack("!BBHI4s", 0, 128, 0, 5, bytes([11, 18, 2, 2]))
    seen: list[bytes] = []
    nursery.start_soon(_router, sock, [None, granted, external, removed], seen)
    gateway = NatPmpGateway("127.0.0.1", port=sock.getsockname()[1])
    with trio.fail_after(5):
        assert await gateway.map(("0.0.0.0", 7400), 7400, 60) == (7401, 60)
        assert await gateway.external_address() == "11.18.2.2"
        await gateway.unmap(("0.0.0.0", 7400), 7401)
    assert seen[0] == seen[1] == natpmp.map_request(7400, 7400, 60)  # sent again
    assert seen[3] == natpmp.map_request(7400, 0, 0)
    sock.close()


async def test_a_silent_or_confused_router_is_an_error(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(natpmp, "FIRST_WAIT", 0.01)
    silent = await _bound()
    gateway = NatPmpGateway("127.0.0.1", port=silent.getsockname()[1])
    with pytest.raises(NatPmpError, match="no NAT-PMP answer from 127"):
        await gateway.external_address()
    confused = await _bound()
    other_port: list[bytes | None] = [struct.pack("!BBHIHHI", 0, 130, 0, 5, 9999, 7401, 60)]
    nursery.start_soon(_router, confused, other_port, [])
    gateway = NatPmpGateway("127.0.0.1", port=confused.getsockname()[1])
    with pytest.raises(NatPmpError, match="mapped port 9999, not 7400"):
        await gateway.map(("0.0.0.0", 7400), 7400, 60)
    silent.close()
    confused.close()
