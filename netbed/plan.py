"""The testbed's address plan: which namespaces exist and which addresses they hold.

Every segment is its own /24, so the mesh's per-/24 limits see distinct
networks. The "internet" uses 11.18.0.0/16: miniupnpd refuses to serve a
private or reserved WAN address ("Public IP address is required"), so the
plan needs a public-looking range, and these addresses exist only inside the
testbed's namespaces; the core router has no default route and nothing
routes them anywhere else (decision 0038). Home LANs are private and reached
only through their router's NAT.
"""

from __future__ import annotations

from dataclasses import dataclass

# Sites, as `Host.site` names them.
PUBLIC = "public"
HOME_A = "home_a"
HOME_B = "home_b"
LAN = "lan"
SITES = (PUBLIC, HOME_A, HOME_B, LAN)

INTERNET = "11.18.0.0/16"
# Segments wired straight to the core router (its address is .1 on each).
PUBLIC_NET = "11.18.1"
HOME_A_WAN_NET = "11.18.2"
HOME_B_WAN_NET = "11.18.3"
LAN_NET = "11.18.4"
# Private LANs behind the two home routers (the router is .1 on each).
HOME_A_LAN_NET = "192.168.10"
HOME_B_LAN_NET = "192.168.20"
# Hosts take .11, .12, ... on their segment.
FIRST_HOST = 11
# The miniupnpd HTTP port on home A's router (SSDP finds it; NAT-PMP is UDP 5351).
UPNP_HTTP_PORT = 5000


@dataclass(frozen=True)
class SitePlan:
    """One site: its segment, its hosts' names, and whether a NAT router fronts it."""

    site: str
    net: str  # the first three octets of its /24
    host_names: tuple[str, ...]
    router: str | None  # the NAT router's short name, None when on the core directly
    wan_net: str | None = None  # the router's link to the core
    upnp: bool = False


def site_plans(public_hosts: int = 3, lan_hosts: int = 3) -> tuple[SitePlan, ...]:
    """The four sites, with `public_hosts` and `lan_hosts` hosts where they vary."""
    return (
        SitePlan(PUBLIC, PUBLIC_NET, _names("pub", public_hosts), None),
        SitePlan(HOME_A, HOME_A_LAN_NET, ("a1", "a2"), "ra", HOME_A_WAN_NET, upnp=True),
        SitePlan(HOME_B, HOME_B_LAN_NET, ("b1", "b2"), "rb", HOME_B_WAN_NET),
        SitePlan(LAN, LAN_NET, _names("lan", lan_hosts), None),
    )


def _names(stem: str, count: int) -> tuple[str, ...]:
    return tuple(f"{stem}{i}" for i in range(1, count + 1))


def host_address(net: str, index: int) -> str:
    return f"{net}.{FIRST_HOST + index}"


def gateway(net: str) -> str:
    return f"{net}.1"


def router_wan(wan_net: str) -> str:
    """A home router's address on its link to the core."""
    return f"{wan_net}.2"
