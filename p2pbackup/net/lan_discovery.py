"""LAN discovery at the edge: announce this peer over mDNS/DNS-SD and browse for others.

python-zeroconf does the multicast DNS. Its synchronous API runs its own
thread (an asyncio loop inside, none of ours); this module keeps that at
arm's length from trio (decision 0039): its blocking calls (open, register,
look up one name, close) run through `trio.to_thread.run_sync`, and its
browser's callbacks, which arrive on zeroconf's thread, only hand the
service's name to trio with `TrioToken.run_sync_soon`, which never blocks
that thread. Everything read from the LAN is checked by `lan_announce`; a
finding that passes goes to `on_finding`, which must not block.

Only the interfaces the peer listens on are announced and watched: a peer
on loopback announces nothing and opens no multicast socket at all.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from p2pbackup.net.lan_announce import (
    MAX_ADDRESSES,
    SERVICE_TYPE,
    AnnouncementRefused,
    Finding,
    Network,
    encode_txt,
    read_announcement,
)

log = logging.getLogger("p2pbackup.net.lan")

# Names waiting to be looked up; beyond this a flood's names are dropped (the
# browser tells us again when a record changes).
QUEUED_NAMES = 64
LOOKUPS_AT_ONCE = 2
LOOKUP_MS = 1500  # one name's records, most often already in zeroconf's cache
CLOSE_SECONDS = 5.0  # unregister (goodbye packets) and close, at most
REFUSALS_LOGGED = 256  # distinct names whose refusal is logged

Interface = tuple[str, int]  # an interface address and its prefix length


@dataclass(frozen=True)
class LanPlan:
    """What to announce: the addresses and their networks (ours are tried first)."""

    addresses: tuple[str, ...]
    networks: tuple[Network, ...]


def plan_for(listen_host: str, interfaces: Iterable[Interface]) -> LanPlan:
    """The addresses to announce for a peer listening on `listen_host`: that address
    itself, or with a wildcard every non-loopback interface address (IPv4 for
    0.0.0.0, both families for ::); none for loopback or a host name."""
    try:
        listen = ipaddress.ip_address(listen_host.strip("[]"))
    except ValueError:
        return LanPlan((), ())
    chosen: list[tuple[str, Network]] = []
    for host, prefix in interfaces:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            continue
        if ip.is_loopback or (ip.version == 6 and ip.is_link_local):
            continue
        wanted = (
            ip == listen
            or (listen.is_unspecified and listen.version == 4 and ip.version == 4)
            or (listen.is_unspecified and listen.version == 6)
        )
        if wanted:
            chosen.append((str(ip), ipaddress.ip_network(f"{ip}/{prefix}", strict=False)))
    if not listen.is_unspecified and not listen.is_loopback and not chosen:
        # An address no interface shows (yet): announce it all the same.
        chosen.append((str(listen), ipaddress.ip_network(str(listen))))
    chosen = chosen[:MAX_ADDRESSES]
    return LanPlan(tuple(a for a, _ in chosen), tuple(dict.fromkeys(n for _, n in chosen)))


def _may_be_on_a_lan(listen_host: str) -> bool:
    """Whether a listen address can be on a LAN at all (not loopback, not a name)."""
    try:
        return not ipaddress.ip_address(listen_host.strip("[]")).is_loopback
    except ValueError:
        return False


def local_interfaces() -> list[Interface]:
    """This host's interface addresses with their prefix lengths (via ifaddr)."""
    import ifaddr

    found: list[Interface] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            host = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            found.append((host, ip.network_prefix))
    return found


class LanDiscovery:
    """Announce one peer and report the others of its mesh, until cancelled."""

    def __init__(
        self,
        node_id: bytes,
        listen: tuple[str, int],
        tag: str,
        on_finding: Callable[[Finding], None],
        interfaces: Callable[[], Sequence[Interface]] = local_interfaces,
    ) -> None:
        self.node_id = node_id
        self.listen = listen
        self.tag = tag
        self.on_finding = on_finding
        self._interfaces = interfaces
        self._plan = LanPlan((), ())
        self._queued: set[str] = set()
        self._refusals_logged: set[str] = set()
        self._send, self._names = trio.open_memory_channel[str](QUEUED_NAMES)
        self._token: trio.lowlevel.TrioToken | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._token = trio.lowlevel.current_trio_token()
        if _may_be_on_a_lan(self.listen[0]):
            interfaces = await trio.to_thread.run_sync(self._interfaces)
            self._plan = plan_for(self.listen[0], interfaces)
        if not self._plan.addresses:
            log.info("LAN discovery idle: %s is on no LAN interface", self.listen[0])
            task_status.started()
            return
        from zeroconf import Error

        try:
            zc = await trio.to_thread.run_sync(_open, list(self._plan.addresses))
        except (OSError, Error) as exc:
            # The peer goes on without it: bootstrap addresses still work.
            log.warning("LAN discovery off: cannot open the mDNS sockets: %s", exc)
            task_status.started()
            return
        browser: Any = None
        try:
            try:
                browser = await trio.to_thread.run_sync(self._browse, zc)
            except (OSError, Error) as exc:
                log.warning("LAN discovery off: cannot browse: %s", exc)
                task_status.started()
                return
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._announce, zc)
                slots = trio.Semaphore(LOOKUPS_AT_ONCE)
                async for name in self._names:
                    await slots.acquire()
                    nursery.start_soon(self._look_up, zc, name, slots)
        finally:
            with trio.move_on_after(CLOSE_SECONDS) as scope:
                scope.shield = True
                await trio.to_thread.run_sync(_close, zc, browser, abandon_on_cancel=True)

    def _browse(self, zc: Any) -> Any:
        from zeroconf import ServiceBrowser

        return ServiceBrowser(zc, SERVICE_TYPE, handlers=[self._changed])

    async def _announce(self, zc: Any) -> None:
        from zeroconf import Error, ServiceInfo

        hexid = self.node_id.hex()
        info = ServiceInfo(
            SERVICE_TYPE,
            f"{hexid}.{SERVICE_TYPE}",
            port=self.listen[1],
            properties=encode_txt(self.node_id, self.tag),
            server=f"p2pb-{hexid[:16]}.local.",
            parsed_addresses=list(self._plan.addresses),
        )
        try:
            # Probing the name takes a second or two; it blocks only this worker thread.
            await trio.to_thread.run_sync(lambda: zc.register_service(info, allow_name_change=True))
        except (OSError, Error) as exc:
            log.warning("cannot announce this peer on the LAN: %s", exc)
            return
        log.info(
            "announced on the LAN at %s port %d", ", ".join(self._plan.addresses), self.listen[1]
        )

    # ---- zeroconf's thread ----------------------------------------------

    def _changed(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        """Called on zeroconf's thread: hand the name to trio and return at once."""
        from zeroconf import ServiceStateChange

        if state_change is ServiceStateChange.Removed or self._token is None:
            return
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._queue, name)

    # ---- back in trio -----------------------------------------------------

    def _queue(self, name: str) -> None:
        if name in self._queued:
            return
        try:
            self._send.send_nowait(name)
        except (trio.WouldBlock, trio.ClosedResourceError):
            return  # a flood: dropped, told again when its record changes
        self._queued.add(name)

    async def _look_up(self, zc: Any, name: str, slot: trio.Semaphore) -> None:
        from zeroconf import Error, IPVersion, ServiceInfo

        try:
            self._queued.discard(name)
            try:
                info = ServiceInfo(SERVICE_TYPE, name)
                found = await trio.to_thread.run_sync(info.request, zc, LOOKUP_MS)
            except (OSError, Error) as exc:
                self._refused(name, str(exc))
                return
            if not found:
                log.debug("LAN announcement %r: no records within %d ms", name, LOOKUP_MS)
                return
            try:
                finding = read_announcement(
                    info.text or b"",
                    info.port,
                    info.addresses_by_version(IPVersion.All),
                    tag=self.tag,
                    own_id=self.node_id,
                    networks=self._plan.networks,
                )
            except AnnouncementRefused as exc:
                self._refused(name, str(exc))
                return
            self.on_finding(finding)
        finally:
            slot.release()

    def _refused(self, name: str, reason: str) -> None:
        if reason == "our own announcement":
            return
        if name not in self._refusals_logged and len(self._refusals_logged) < REFUSALS_LOGGED:
            self._refusals_logged.add(name)
            log.debug("LAN announcement %r ignored: %s", name, reason)


def _open(addresses: list[str]) -> Any:
    """Zeroconf's sockets on our IPv4 interfaces (mDNS over IPv6 is left for later; IPv6
    addresses are announced all the same)."""
    from zeroconf import IPVersion, Zeroconf

    v4 = [a for a in addresses if ipaddress.ip_address(a).version == 4]
    if not v4:
        raise OSError("no IPv4 address to send mDNS from")
    return Zeroconf(interfaces=v4, ip_version=IPVersion.V4Only)


def _close(zc: Any, browser: Any) -> None:
    """Stop browsing, say goodbye (unregister) and close: zeroconf's thread ends.
    A failure here is logged, never raised: the peer is stopping anyway."""
    from zeroconf import Error

    try:
        if browser is not None:
            browser.cancel()
        zc.unregister_all_services()
    except (OSError, RuntimeError, Error) as exc:
        log.debug("LAN discovery: goodbye not sent: %s", exc)
    finally:
        zc.close()


__all__ = ["LanDiscovery", "LanPlan", "local_interfaces", "plan_for"]
