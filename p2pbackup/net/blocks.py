"""Which address block a peer's address falls in, for limits that resist floods.

Ids cost nothing to make, addresses do: a flood of identities usually comes
from a few networks. Routing tables, record replicas and share placement
therefore count peers per block (an IPv4 /24, an IPv6 /48, as go-ethereum and
libp2p do) and spread what they keep over blocks. Meshes on one host or one
LAN (tests, a home lab) would all share a block; the `exempt` kinds give each
such address (host and port) a block of its own, and only where configured.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from p2pbackup.net.contact import Contact

LOOPBACK = "loopback"
LAN = "lan"
EXEMPT_KINDS = frozenset({LOOPBACK, LAN})


def exempt_kinds(names: Iterable[str]) -> frozenset[str]:
    """Parse a user's list of exempt kinds; raises `ValueError` naming the unknown ones."""
    kinds = frozenset(name.strip().lower() for name in names if name.strip())
    unknown = kinds - EXEMPT_KINDS
    if unknown:
        raise ValueError(
            f"unknown address kind(s) {', '.join(sorted(unknown))}: "
            f"choose from {', '.join(sorted(EXEMPT_KINDS))}"
        )
    return kinds


def block_of(contact: Contact, exempt: frozenset[str] = frozenset()) -> str:
    """A key naming the contact's address block; equal keys mean one block. Kept on the
    contact, which is read anyway: a shared cache's lookup is a cold read per call."""
    kept = contact._block
    if kept is not None and kept[0] is exempt:
        return kept[1]
    block = block_at(contact.host, contact.port, exempt)
    object.__setattr__(contact, "_block", (exempt, block))  # frozen: a cache, not a field
    return block


@lru_cache(maxsize=65536)
def block_at(host: str, port: int, exempt: frozenset[str]) -> str:
    """`block_of` an address. Cached: routing tables and lookups ask for the same few
    thousand addresses all day."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"name:{host.lower()}"  # a host name: its own block
    if (LOOPBACK in exempt and ip.is_loopback) or (
        LAN in exempt and ip.is_private and not ip.is_loopback
    ):
        return f"own:{host}:{port}"
    prefix = 24 if ip.version == 4 else 48
    network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    return f"net:{network.network_address}/{prefix}"
