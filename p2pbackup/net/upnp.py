"""UPnP IGD through miniupnpc, run off the event loop.

miniupnpc's calls block (SSDP discovery waits, SOAP calls are HTTP), so each
runs in a worker thread under the caller's timeout. A call abandoned by a
timeout may still be running in its thread, so the device object is never
used again after one: the gateway marks itself broken and the port mapper
discovers afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from p2pbackup.errors import P2PBackupError

log = logging.getLogger("p2pbackup.port_mapping")
T = TypeVar("T")
DESCRIPTION = "p2pbackup"
# How long SSDP discovery listens for routers' answers, in milliseconds.
DISCOVERY_WAIT_MS = 1500


class UpnpError(P2PBackupError):
    """The router answered a UPnP call with an error (its reason is the message)."""


class MappingConflict(UpnpError):
    """The external port is mapped to another host already."""


async def _off_loop(call: Callable[[], T]) -> T:
    """`call` in a worker thread; a cancelled caller leaves it to finish alone."""
    return await trio.to_thread.run_sync(call, abandon_on_cancel=True)


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


async def discover() -> UpnpGateway | None:
    """The first Internet Gateway Device that answers on the LAN, or None."""
    import miniupnpc

    def find() -> Any:
        device = miniupnpc.UPnP()
        device.discoverdelay = DISCOVERY_WAIT_MS
        try:
            if device.discover() <= 0:
                return None
            device.selectigd()
        except Exception:  # miniupnpc raises a bare Exception when nothing answers
            return None
        return device

    device = await _off_loop(find)
    return None if device is None else UpnpGateway(device)


class UpnpGateway:
    """One router's IGD: map, check and remove TCP port mappings for this host."""

    protocol = "upnp"

    def __init__(self, device: Any) -> None:
        self._device = device
        self.broken = False

    @property
    def lan_address(self) -> str:
        """This host's address on the router's LAN, as the IGD connection sees it."""
        return str(self._device.lanaddr)

    async def _call(self, name: str, *args: Any) -> Any:
        if self.broken:
            raise UpnpError("the UPnP device was left by a call that timed out")
        method = getattr(self._device, name)
        self.broken = True  # until the call returns: a cancelled one leaves it unusable
        try:
            result = await _off_loop(lambda: method(*args))
        except Exception as exc:
            self.broken = False
            reason = _reason(exc)
            if "Conflict" in reason:
                raise MappingConflict(reason) from None
            raise UpnpError(reason) from None
        self.broken = False
        return result

    async def external_address(self) -> str:
        address = await self._call("externalipaddress")
        if not address:
            raise UpnpError("the router does not know its external address")
        return str(address)

    async def map(
        self, internal: tuple[str, int], external_port: int, lease: int
    ) -> tuple[int, int]:
        """Map `external_port` to `internal` for `lease` seconds; the port and lease granted.

        A router that takes only permanent mappings gets one (lease 0); renewing
        still re-maps it if the router forgot it."""
        host, port = internal
        try:
            await self._call(
                "addportmapping", external_port, "TCP", host, port, DESCRIPTION, "", lease
            )
        except UpnpError as exc:
            if "OnlyPermanentLeasesSupported" not in str(exc):
                raise
            await self._call("addportmapping", external_port, "TCP", host, port, DESCRIPTION, "", 0)
            return external_port, 0
        return external_port, lease

    async def is_mapped(self, internal: tuple[str, int], external_port: int) -> bool:
        """Whether the router still forwards `external_port` to `internal`."""
        entry = await self._call("getspecificportmapping", external_port, "TCP")
        return entry is not None and (entry[0], entry[1]) == internal

    async def unmap(self, internal: tuple[str, int], external_port: int) -> None:
        if await self.is_mapped(internal, external_port):
            await self._call("deleteportmapping", external_port, "TCP")
