"""A real NAT testbed in network namespaces, for tests, benchmarks and demos.

An "internet" core router; a public segment; home A behind a NAT router that
runs a real miniupnpd (UPnP IGD and NAT-PMP); home B behind a NAT router
with no UPnP; a LAN of hosts on one bridge, routed without NAT. The address
plan is in `netbed.plan` (decision 0038). Needs root, `ip`, `nft` and
`miniupnpd`; `skip_reason()` says what is missing.
"""

from netbed.bed import Host, Router, Testbed, unique_prefix
from netbed.plan import HOME_A, HOME_B, LAN, PUBLIC
from netbed.requirements import skip_reason
from netbed.router import UpnpDaemon

__all__ = [
    "HOME_A",
    "HOME_B",
    "LAN",
    "PUBLIC",
    "Host",
    "Router",
    "Testbed",
    "UpnpDaemon",
    "skip_reason",
    "unique_prefix",
]
