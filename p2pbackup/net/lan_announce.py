"""What a peer says about itself on the LAN, and what it believes of what others say.

LAN discovery (DNS-SD over mDNS, service `_p2pbackup._tcp.local.`) lets the
members of a mesh on one LAN find each other with no bootstrap address. An
announcement is untrusted input from anyone on the LAN: its TXT record is
checked here (sizes, a node id of the right length, the mesh tag, the port,
a few addresses), and a finding is only a hint of where to dial. The
handshake proves the id, and the mesh's gate membership; nothing an
announcement says enters a routing table unproven.

No I/O: the edge (`lan_discovery.py`) feeds raw records in and dials what
comes out; time arrives as an argument (decision 0039).
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import blake2b

from p2pbackup.crypto.identity import NODE_ID_BYTES
from p2pbackup.errors import P2PBackupError

SERVICE_TYPE = "_p2pbackup._tcp.local."
TXT_VERSION = "1"
# The tag of an open mesh; a private mesh's tag is derived from its id (`mesh_tag`).
OPEN_TAG = "open"
TAG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# Ours is under 80 bytes; a larger record is nobody we want to hear from.
MAX_TXT_BYTES = 400
# Addresses one announcement may name (a host with a few interfaces) and that we try.
MAX_ADDRESSES = 8
ADDRESSES_TRIED = 2

Address = tuple[str, int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AnnouncementRefused(P2PBackupError):
    """An announcement we do not act on, and why (logged at debug level by the edge)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """A peer of our mesh that says it listens at `addresses` (best first), unproven."""

    node_id: bytes
    addresses: tuple[Address, ...]


def mesh_tag(mesh_id: bytes) -> str:
    """A short public tag for a mesh: peers of other meshes on the LAN skip it without a
    dial. A one-way digest, so nothing of the mesh id itself is broadcast."""
    return blake2b(mesh_id, digest_size=8, person=b"p2pb-lan-tag").hexdigest()


def check_tag(tag: str) -> str:
    if not TAG_PATTERN.fullmatch(tag):
        raise ValueError(f"a LAN tag is 1 to 32 of a-z, 0-9 and '-', not {tag!r}")
    return tag


# ---- the TXT record -----------------------------------------------------


def encode_txt(node_id: bytes, tag: str) -> bytes:
    """Our TXT record: version, mesh tag and node id, as DNS character-strings."""
    entries = (f"v={TXT_VERSION}", f"tag={check_tag(tag)}", f"id={node_id.hex()}")
    out = bytearray()
    for entry in entries:
        raw = entry.encode("ascii")
        out += bytes([len(raw)]) + raw
    return bytes(out)


def decode_txt(raw: bytes) -> dict[str, str]:
    """A TXT record's key/value pairs (RFC 6763 section 6): keys lowercased, the first
    of a repeated key wins, values ASCII; anything else is refused."""
    if len(raw) > MAX_TXT_BYTES:
        raise AnnouncementRefused(f"TXT record of {len(raw)} bytes (at most {MAX_TXT_BYTES})")
    pairs: dict[str, str] = {}
    at = 0
    while at < len(raw):
        size = raw[at]
        entry = raw[at + 1 : at + 1 + size]
        if len(entry) != size:
            raise AnnouncementRefused("TXT record cut short")
        at += 1 + size
        if not entry:
            continue
        key, _, value = entry.partition(b"=")
        if not key or not all(0x20 <= b <= 0x7E for b in key + value):
            raise AnnouncementRefused("TXT entry is not printable ASCII")
        pairs.setdefault(key.decode("ascii").lower(), value.decode("ascii"))
    return pairs


# ---- one announcement ---------------------------------------------------


def read_announcement(
    txt: bytes,
    port: int | None,
    addresses: Sequence[bytes],
    *,
    tag: str,
    own_id: bytes,
    networks: Sequence[Network] = (),
) -> Finding:
    """The finding an announcement makes, or `AnnouncementRefused` saying why not.

    `addresses` are the packed A/AAAA records; `networks` those of our own
    interfaces, so an address on one of them is tried first.
    """
    pairs = decode_txt(txt)
    if pairs.get("v") != TXT_VERSION:
        raise AnnouncementRefused(f"unknown announcement version {pairs.get('v')!r}")
    if pairs.get("tag") != tag:
        raise AnnouncementRefused("another mesh (its tag differs)")
    node_id = _node_id(pairs.get("id", ""))
    if node_id == own_id:
        raise AnnouncementRefused("our own announcement")
    if port is None or not 0 < port < 65536:
        raise AnnouncementRefused(f"port {port!r} out of range")
    if len(addresses) > MAX_ADDRESSES:
        raise AnnouncementRefused(f"{len(addresses)} addresses (at most {MAX_ADDRESSES})")
    usable = [ip for ip in map(_dialable, addresses) if ip is not None]
    if not usable:
        raise AnnouncementRefused("no address we could dial")
    ordered = order_addresses(usable, networks)[:ADDRESSES_TRIED]
    return Finding(node_id, tuple((str(ip), port) for ip in ordered))


def _node_id(text: str) -> bytes:
    if len(text) != 2 * NODE_ID_BYTES or not re.fullmatch(r"[0-9a-f]+", text):
        raise AnnouncementRefused(f"node id is not {2 * NODE_ID_BYTES} lowercase hex digits")
    return bytes.fromhex(text)


def _dialable(packed: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An announced address worth a dial: none of loopback (a neighbour must not make
    us dial our own host's services), multicast, unspecified or scoped link-local v6."""
    if len(packed) not in (4, 16):
        return None
    ip = ipaddress.ip_address(packed)
    if ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return None
    if ip.version == 6 and ip.is_link_local:
        return None  # needs a scope id the record does not carry
    return ip


def order_addresses(
    addresses: Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address],
    networks: Sequence[Network],
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Addresses on one of our own networks first, then private ones, then the rest;
    duplicates dropped, the announcer's order kept within each group."""
    unique = list(dict.fromkeys(addresses))

    def rank(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
        if any(ip.version == net.version and ip in net for net in networks):
            return 0
        return 1 if ip.is_private else 2

    return sorted(unique, key=rank)


# ---- which findings we act on -------------------------------------------


class Introductions:
    """Which (node id, address) pairs to dial, so announcements cost a bounded number of
    dials: one per pair per `cooldown`, and at most `per_minute` in all (a bucket of
    `burst`), however many names a flood makes up. Remembers `remembered` pairs."""

    def __init__(
        self,
        cooldown: float = 60.0,
        per_minute: float = 30.0,
        burst: int = 10,
        remembered: int = 1024,
    ) -> None:
        self.cooldown = cooldown
        self.rate = per_minute / 60.0
        self.burst = burst
        self.remembered = remembered
        self._tokens = float(burst)
        self._last: float | None = None
        self._tried: OrderedDict[tuple[bytes, Address], float] = OrderedDict()

    def admit(self, node_id: bytes, address: Address, now: float) -> bool:
        """May we dial `node_id` at `address` now? If so it counts as tried."""
        pair = (node_id, address)
        last = self._tried.get(pair)
        if last is not None and now - last < self.cooldown:
            return False
        self._refill(now)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        self._tried[pair] = now
        self._tried.move_to_end(pair)
        while len(self._tried) > self.remembered:
            self._tried.popitem(last=False)
        return True

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now if self._last is None else max(self._last, now)
