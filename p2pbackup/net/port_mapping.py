"""Port mapping: ask the home router to forward a public port to this peer.

`PortMapper` runs beside the peer: it finds the router (UPnP IGD first,
NAT-PMP when no IGD answers), maps the listen port (the same external port
if free, else another), tells `on_mapped` the external address, renews the
lease halfway through, maps again when the router forgot the mapping or its
external address changed, backs off when the router refuses (one log line
with its reason), and removes the mapping on a clean stop. Every call to the
router is under a timeout; the decisions (`LeaseSchedule`) are sans-IO.
Decision 0038.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import trio

from p2pbackup.errors import P2PBackupError
from p2pbackup.net import natpmp, upnp
from p2pbackup.net.contact import format_address

log = logging.getLogger("p2pbackup.port_mapping")
Address = tuple[str, int]
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
# External ports tried after the listen port when another host holds it.
OTHER_PORT_TRIES = 3


class Gateway(Protocol):
    """A router that maps TCP ports: `upnp.UpnpGateway` or `natpmp.NatPmpGateway`."""

    protocol: str

    async def external_address(self) -> str: ...

    async def map(self, internal: Address, external_port: int, lease: int) -> tuple[int, int]: ...

    async def is_mapped(self, internal: Address, external_port: int) -> bool: ...

    async def unmap(self, internal: Address, external_port: int) -> None: ...


@dataclass(frozen=True)
class MapperConfig:
    lease: int = 3600  # seconds asked of the router
    call_timeout: float = 10.0  # one call to the router, discovery included
    retry_min: float = 30.0  # first wait after a failure; it doubles
    retry_max: float = 1800.0
    stop_timeout: float = 3.0  # removing the mapping on a clean stop


@dataclass(frozen=True)
class Mapping:
    protocol: str
    internal: Address
    external: Address
    lease: int  # granted; 0: permanent
    expires_at: float  # trio time; inf when permanent


class LeaseSchedule:
    """When to renew a lease and how long to wait after failures (sans-IO)."""

    def __init__(self, config: MapperConfig) -> None:
        self.config = config
        self.failures = 0

    def renew_in(self, granted: int) -> float:
        """Halfway through the lease granted; a permanent one is checked as often as
        the lease asked for would be renewed (the router may still forget it)."""
        self.failures = 0
        return max(1.0, (granted or self.config.lease) / 2)

    def retry_in(self) -> float:
        """After a failure: `retry_min`, doubling each time, at most `retry_max`. A
        lease shorter than twice `retry_min` starts from its renewal interval instead:
        waiting longer than the lease lasts would leave the port unmapped for nothing."""
        first = min(self.config.retry_min, max(1.0, self.config.lease / 2))
        wait = first * 2**self.failures
        self.failures += 1
        return float(min(wait, self.config.retry_max))


def mappable(listen: Address) -> bool:
    """Whether a peer listening at `listen` can have a router: not loopback, and an
    IPv4 or wildcard address (port mapping is IPv4)."""
    host = listen[0]
    if host in WILDCARDS:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.version == 4 and not ip.is_loopback


async def discover_gateway() -> Gateway | None:
    """UPnP IGD first; NAT-PMP at the default gateway when no IGD answers."""
    found = await upnp.discover()
    if found is not None:
        return found
    try:
        table = Path("/proc/net/route").read_text()
    except OSError:
        return None
    router = natpmp.default_gateway(table)
    if router is None:
        return None
    gateway = natpmp.NatPmpGateway(router)
    try:
        await gateway.external_address()
    except (natpmp.NatPmpError, OSError):
        return None
    return gateway


class PortMapper:
    """Keeps one TCP port mapped on the home router while it runs."""

    def __init__(
        self,
        listen: Address,
        on_mapped: Callable[[Address | None], None],
        rng: random.Random,
        config: MapperConfig | None = None,
        discover: Callable[[], Awaitable[Gateway | None]] = discover_gateway,
    ) -> None:
        self.listen = listen
        self.on_mapped = on_mapped
        self.rng = rng
        self.config = config or MapperConfig()
        self.discover = discover
        self.schedule = LeaseSchedule(self.config)
        self.gateway: Gateway | None = None
        self.mapping: Mapping | None = None
        # The mapping held before a failure: the router that answers again is asked
        # for the same external port, and whether it forgot it.
        self._lost: Mapping | None = None
        self._said_none = False
        self._reported: Address | None = None

    def status(self) -> dict[str, object] | None:
        """What `status --json` shows: the external address, protocol, lease left."""
        if self.mapping is None:
            return None
        left = self.mapping.expires_at - trio.current_time()
        return {
            "external": format_address(self.mapping.external),
            "protocol": self.mapping.protocol,
            "lease_expires_in": None if math.isinf(left) else max(0, round(left)),
        }

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.sleep(await self.step())
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self.config.stop_timeout):
                await self._remove()

    async def step(self) -> float:
        """Map, renew or re-map as needed; seconds until the next step."""
        try:
            with trio.fail_after(self.config.call_timeout):
                if self.gateway is None:
                    self.gateway = await self.discover()
                if self.gateway is None:
                    return self._no_gateway()
                return await self._keep(self.gateway)
        except (P2PBackupError, OSError, trio.TooSlowError) as exc:
            return self._failed(exc)

    def _no_gateway(self) -> float:
        if not self._said_none:
            log.info("no router offers port mapping (UPnP IGD or NAT-PMP) on this network")
            self._said_none = True
        self._report(None)
        return self.schedule.retry_in()

    async def _keep(self, gateway: Gateway) -> float:
        current = self.mapping or self._lost
        internal = self._internal(gateway)
        if current is not None and not await gateway.is_mapped(internal, current.external[1]):
            log.warning(
                "the router forgot the mapping of %s; mapping again",
                format_address(current.external),
            )
        wished = current.external[1] if current is not None else self.listen[1]
        port, lease = await self._map(gateway, internal, wished)
        host = await gateway.external_address()
        expires = trio.current_time() + lease if lease else math.inf
        self.mapping = Mapping(gateway.protocol, internal, (host, port), lease, expires)
        self._lost = None
        if current is None or current.external != (host, port):
            log.info(
                "port mapping by %s: %s -> %s (lease %ds)",
                gateway.protocol,
                format_address((host, port)),
                format_address(internal),
                lease,
            )
        self._report((host, port))
        return self.schedule.renew_in(lease)

    async def _map(self, gateway: Gateway, internal: Address, wished: int) -> tuple[int, int]:
        """The wished external port, else another free one."""
        for attempt in range(OTHER_PORT_TRIES + 1):
            try:
                return await gateway.map(internal, wished, self.config.lease)
            except upnp.MappingConflict:
                if attempt == OTHER_PORT_TRIES:
                    raise
                wished = self.rng.randrange(1024, 65536)
        raise AssertionError("unreachable")

    def _internal(self, gateway: Gateway) -> Address:
        host = self.listen[0]
        if host in WILDCARDS:
            host = getattr(gateway, "lan_address", host)
        return host, self.listen[1]

    def _failed(self, exc: BaseException) -> float:
        reason = "no answer in time" if isinstance(exc, trio.TooSlowError) else str(exc)
        wait = self.schedule.retry_in()
        protocol = self.gateway.protocol if self.gateway is not None else "discovery"
        log.warning(
            "port mapping of %s failed (%s): %s; trying again in %ds",
            format_address(self.listen),
            protocol,
            reason,
            wait,
        )
        # Find the router afresh: it may have restarted, changed protocol or address,
        # and a UPnP device left by a timed-out call cannot be used again.
        self.gateway = None
        self._lost = self.mapping or self._lost
        self.mapping = None
        self._report(None)
        return wait

    def _report(self, external: Address | None) -> None:
        """Tell `on_mapped` of a change of external address (None: no mapping)."""
        if external == self._reported:
            return
        self._reported = external
        self.on_mapped(external)

    async def _remove(self) -> None:
        """Remove the mapping on a clean stop, a lost one too: a router that restarted
        from its lease file holds it again while a failed call made it count as lost,
        and made the router unknown, so it is looked for once more. `unmap` removes
        only a mapping to this peer's own address."""
        mapping = self.mapping or self._lost
        self.mapping = self._lost = None
        if mapping is None:
            return
        try:
            gateway = self.gateway or await self.discover()
            if gateway is None:
                return
            await gateway.unmap(mapping.internal, mapping.external[1])
        except (P2PBackupError, OSError) as exc:
            log.warning("could not remove the port mapping of %s: %s", mapping.external, exc)
            return
        log.info("port mapping of %s removed", format_address(mapping.external))
