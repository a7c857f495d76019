"""This machine's interface addresses, and which of them to name when listening anywhere.

A peer listening on 0.0.0.0 or :: cannot advertise that: others need one of the
machine's real addresses. Reading the interfaces is the one I/O here
(`local_interfaces`); the choices made from them are plain functions, so tests
hand in any machine they like.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("p2pbackup.net.interfaces")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
WILDCARDS = frozenset({"0.0.0.0", "::"})
# Ranges a home or office hands out behind its router (and a carrier's NAT): reachable
# from the same LAN, never from outside. Python's `is_private` also counts the
# documentation ranges, which tests and testbeds use as public addresses.
_LAN = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


@dataclass(frozen=True, slots=True)
class Interface:
    """One address of one interface, with its network (the prefix it is on-link for)."""

    ip: IP
    network: Network


def local_interfaces() -> tuple[Interface, ...]:
    """The machine's interface addresses; none if they cannot be read."""
    import ifaddr

    found: list[Interface] = []
    try:
        adapters = ifaddr.get_adapters()
    except OSError as exc:  # no netlink, a sandbox: the peer names its listen address
        log.warning("cannot read this machine's interfaces: %s", exc)
        return ()
    for adapter in adapters:
        for entry in adapter.ips:
            host = entry.ip if isinstance(entry.ip, str) else entry.ip[0]
            try:
                ip = ipaddress.ip_address(host.split("%")[0])
                network = ipaddress.ip_network(f"{ip}/{entry.network_prefix}", strict=False)
            except ValueError:
                continue
            found.append(Interface(ip, network))
    return tuple(found)


def is_wildcard(host: str) -> bool:
    return host in WILDCARDS


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def well_formed_host(host: str) -> bool:
    """An IP address, or a DNS name of well-formed labels (RFC 1123)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def kind_of(host: str) -> str:
    """ "loopback", "link-local", "lan" (a private range), "public" or "name"."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "name"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if any(ip in network for network in _LAN if network.version == ip.version):
        return "lan"
    return "public"


def usable_hosts(interfaces: Iterable[Interface], bound: str) -> list[str]:
    """The addresses a listener bound to `bound` (a wildcard) accepts on, best first:
    public, then private, then loopback; never link-local (it needs a scope to dial)."""
    version = 6 if ":" in bound else 4
    rank = {"public": 0, "lan": 1, "loopback": 2}
    hosts = {
        str(i.ip): rank[kind_of(str(i.ip))]
        for i in interfaces
        if i.ip.version == version and kind_of(str(i.ip)) in rank
    }
    return sorted(hosts, key=lambda host: hosts[host])


def on_link(host: str, interfaces: Iterable[Interface]) -> bool:
    """Is `host` on the network of one of our interfaces (the same LAN, or this host)?"""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip.version == i.network.version and ip in i.network for i in interfaces)
