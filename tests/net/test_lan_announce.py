"""LAN announcements: our TXT record, the checks on everyone else's, and the dial budget."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.net.lan_announce import (
    ADDRESSES_TRIED,
    MAX_ADDRESSES,
    OPEN_TAG,
    AnnouncementRefused,
    Finding,
    Introductions,
    check_tag,
    decode_txt,
    encode_txt,
    mesh_tag,
    order_addresses,
    read_announcement,
)

OURS = bytes(range(20))
THEIRS = bytes(range(1, 21))
LAN = (ipaddress.ip_network("192.168.1.0/24"),)


def _v4(*hosts: str) -> list[bytes]:
    return [socket.inet_aton(host) for host in hosts]


def _read(txt: bytes, port: int | None = 7400, addresses: list[bytes] | None = None) -> Finding:
    if addresses is None:
        addresses = _v4("192.168.1.20")
    return read_announcement(txt, port, addresses, tag=OPEN_TAG, own_id=OURS, networks=LAN)


def test_our_record_reads_back_as_a_finding() -> None:
    txt = encode_txt(THEIRS, OPEN_TAG)
    assert len(txt) < 80
    assert decode_txt(txt) == {"v": "1", "tag": "open", "id": THEIRS.hex()}
    assert _read(txt) == Finding(THEIRS, (("192.168.1.20", 7400),))


def test_the_mesh_tag_hides_the_mesh_id() -> None:
    mesh_id = b"\x07" * 32
    tag = mesh_tag(mesh_id)
    assert check_tag(tag) == tag and len(tag) == 16
    assert mesh_id.hex()[:8] not in tag and tag != mesh_tag(b"\x08" * 32)
    with pytest.raises(ValueError, match="LAN tag"):
        check_tag("Not A Tag")


@pytest.mark.parametrize(
    ("txt", "reason"),
    [
        (encode_txt(THEIRS, "another-mesh"), "another mesh"),
        (encode_txt(OURS, OPEN_TAG), "our own"),
        (b"\x03v=2\x08tag=open" + b"\x2bid=" + THEIRS.hex().encode(), "version"),
        (b"\x03v=1\x08tag=open\x07id=abcd", "node id"),
        (b"\x03v=1\x08tag=open" + b"\x2bid=" + THEIRS.hex().upper().encode(), "node id"),
        (b"\x03v=1\x08tag=open", "node id"),
        (b"\x03v=1\x08tag=open\x30id=", "cut short"),
        (b"\x05v=1\xff\x00", "printable"),
        (b"\x01" * 401, "400"),
    ],
)
def test_bad_records_are_refused_with_a_reason(txt: bytes, reason: str) -> None:
    with pytest.raises(AnnouncementRefused, match=reason):
        _read(txt)


def test_first_of_a_repeated_key_wins() -> None:
    other = encode_txt(THEIRS, "another-mesh")
    assert _read(encode_txt(THEIRS, OPEN_TAG) + other).node_id == THEIRS
    with pytest.raises(AnnouncementRefused, match="another mesh"):
        _read(other + encode_txt(THEIRS, OPEN_TAG))


@pytest.mark.parametrize("port", [None, 0, 65536, -1])
def test_ports_out_of_range_are_refused(port: int | None) -> None:
    with pytest.raises(AnnouncementRefused, match="port"):
        _read(encode_txt(THEIRS, OPEN_TAG), port=port)


def test_addresses_we_must_not_dial_are_dropped() -> None:
    txt = encode_txt(THEIRS, OPEN_TAG)
    for bad in (
        _v4("127.0.0.1"),
        _v4("224.0.0.251"),
        _v4("0.0.0.0"),
        [socket.inet_pton(socket.AF_INET6, "fe80::1")],
        [b"\x01\x02\x03"],
    ):
        with pytest.raises(AnnouncementRefused, match="no address"):
            _read(txt, addresses=bad)
    with pytest.raises(AnnouncementRefused, match="addresses"):
        _read(txt, addresses=_v4(*(f"192.168.1.{i}" for i in range(MAX_ADDRESSES + 1))))


def test_an_address_on_our_own_network_is_tried_first() -> None:
    txt = encode_txt(THEIRS, OPEN_TAG)
    found = _read(txt, addresses=_v4("8.8.4.4", "10.0.0.5", "192.168.1.20", "127.0.0.1"))
    assert [host for host, _ in found.addresses] == ["192.168.1.20", "10.0.0.5"]
    assert len(found.addresses) == ADDRESSES_TRIED
    ordered = order_addresses(
        map(ipaddress.ip_address, ["8.8.4.4", "192.168.1.2", "8.8.4.4", "172.16.0.1"]), LAN
    )
    assert [str(ip) for ip in ordered] == ["192.168.1.2", "172.16.0.1", "8.8.4.4"]


@given(
    txt=st.binary(max_size=600),
    port=st.one_of(st.none(), st.integers(-10, 70000)),
    addresses=st.lists(st.binary(min_size=0, max_size=17), max_size=10),
)
def test_any_record_yields_a_finding_or_our_refusal(
    txt: bytes, port: int | None, addresses: list[bytes]
) -> None:
    try:
        found = _read(txt, port=port, addresses=addresses)
    except AnnouncementRefused:
        return
    assert found.node_id != OURS and 0 < len(found.addresses) <= ADDRESSES_TRIED


@given(
    extra=st.lists(
        st.tuples(st.text("abcdefghijklmnopqrstuvwxyz-", max_size=20), st.binary(max_size=200)),
        max_size=6,
    ),
    port=st.integers(1, 65535),
)
def test_unknown_keys_are_ignored_and_unprintable_ones_refused(
    extra: list[tuple[str, bytes]], port: int
) -> None:
    entries = [b"x-" + key.encode() + b"=" + value for key, value in extra]
    txt = b"".join(bytes([len(e)]) + e for e in entries) + encode_txt(THEIRS, OPEN_TAG)
    printable = all(0x20 <= b <= 0x7E for _, value in extra for b in value)
    if printable and len(txt) <= 400:
        assert _read(txt, port=port) == Finding(THEIRS, (("192.168.1.20", port),))
    else:
        with pytest.raises(AnnouncementRefused):
            _read(txt, port=port)


def test_a_flood_of_announcements_costs_a_bounded_number_of_dials() -> None:
    gate = Introductions(cooldown=60.0, per_minute=30.0, burst=10)
    address = ("192.168.1.20", 7400)
    # A thousand made-up ids at once: the burst, no more.
    admitted = sum(gate.admit(i.to_bytes(20, "big"), address, 0.0) for i in range(1000))
    assert admitted == 10
    # Over the next ten minutes, however many more: the rate, no more.
    for second in range(1, 601):
        admitted += sum(
            gate.admit((second * 1000 + i).to_bytes(20, "big"), address, float(second))
            for i in range(20)
        )
    assert admitted <= 10 + 30 * 10


def test_one_peer_at_one_address_is_dialled_once_per_cooldown() -> None:
    gate = Introductions(cooldown=60.0)
    address = ("192.168.1.20", 7400)
    assert gate.admit(THEIRS, address, 0.0)
    assert not gate.admit(THEIRS, address, 30.0)
    assert gate.admit(THEIRS, ("192.168.1.21", 7400), 30.0)  # another address: its own turn
    assert gate.admit(THEIRS, address, 61.0)
