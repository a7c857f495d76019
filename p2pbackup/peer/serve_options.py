"""What `serve` is told: addresses, the DHT's and maintenance's settings, what this
peer offers others, and how it finds and is found (decisions 0038, 0039, 0041)."""

from __future__ import annotations

from dataclasses import dataclass, field

from p2pbackup.base import defaults
from p2pbackup.dht.config import DhtConfig
from p2pbackup.maintenance.config import MaintenanceConfig
from p2pbackup.net.transport import Address
from p2pbackup.peer.relaying import RelayOptions
from p2pbackup.shares.lease_rules import MAX_LEASE_SECONDS


@dataclass(frozen=True)
class ServeOptions:
    listen: Address
    bootstrap: tuple[Address, ...] = ()
    dht: DhtConfig = field(default_factory=DhtConfig)
    capacity: int = 20 * 2**30
    # The most of `capacity` one owner may use; None: DEFAULT_OWNER_QUOTA of it.
    owner_quota: int | None = None
    maintenance: MaintenanceConfig = field(default_factory=MaintenanceConfig)
    # How long storage peers keep this owner's new or renewed shares, and how often
    # the owner renews them.
    lease_seconds: int = defaults.LEASE_SECONDS
    renew_interval: float = defaults.RENEW_INTERVAL
    # The longest lease this peer keeps others' shares for, whatever they signed.
    max_lease: int = MAX_LEASE_SECONDS
    # Ask the home router to forward a public port (UPnP IGD, NAT-PMP): decision 0038.
    port_mapping: bool = True
    port_mapping_lease: int = 3600
    # Find the mesh's other peers on the LAN by mDNS, announcing under the mesh's tag
    # (decision 0039); a peer on loopback announces nothing either way.
    lan_discovery: bool = True
    # How others reach this peer (`--advertise`), checked like any candidate: decision 0041.
    advertise: tuple[Address, ...] = ()
    # Serving as a relay, and reaching others through relays (decision 0040).
    relay: RelayOptions = field(default_factory=RelayOptions)
