"""Dial-back requests: "can you reach me at this address?" (libp2p's AutoNAT), answered.

A peer cannot see from inside whether others can dial it; it asks a few
peers to try. Such a request must not turn the peers it asks into a
dialler of somebody else's address, so a checker dials only the address
the asker's own connection comes from (any port: that host is the asker's,
or its router's), as AutoNAT v1 does; a loopback or private address only
when the asker's connection comes from that same block, so a peer on a LAN or
a test host can check its own. Only IP literals are dialled (the asker
resolves its names itself). One check per asker at a time, a few at once in
all, and each dial counts against the transport's per-address dial budget.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import parse_address
from p2pbackup.net.interfaces import kind_of
from p2pbackup.net.probe import NotDialled
from p2pbackup.net.transport import Address, Remote
from p2pbackup.wire.messages import Message, MessageType, message
from p2pbackup.wire.schema import bool_field, str_field

log = logging.getLogger("p2pbackup.dht.dial_me_back")

AT_ONCE = 4  # checks under way at once, over all askers
PROBE_TIMEOUT = 5.0

Probe = Callable[[Address, bytes, float], Awaitable[None]]


@message(MessageType.DIAL_ME_BACK)
class DialMeBack(Message):
    """Dial me at `address` ("HOST:PORT", an IP literal) and say whether I answered."""

    address: Annotated[str, str_field(64)]


@message(MessageType.DIALLED_BACK)
class DialledBack(Message):
    """The answer; `tried` is False when the checker refused to dial (`reason` says why),
    which says nothing of the address."""

    ok: Annotated[bool, bool_field()]
    tried: Annotated[bool, bool_field()]
    reason: Annotated[str, str_field(300)] = ""


def _block(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if ip.is_loopback:
        return ipaddress.ip_network("127.0.0.0/8" if ip.version == 4 else "::1/128")
    return ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 48}", strict=False)


def refusal(far: Address | None, target: Address) -> str | None:
    """Why a checker must not dial `target` for an asker whose connection comes from
    `far`; None when it may."""
    if far is None:
        return "your connection did not come straight from you (a relay?): nothing to compare"
    try:
        wanted = ipaddress.ip_address(target[0])
    except ValueError:
        return f"only an IP address is dialled back, not {target[0][:64]!r}"
    try:
        source = ipaddress.ip_address(far[0])
    except ValueError:
        return "your connection's address is not an IP address"
    if isinstance(source, ipaddress.IPv6Address) and source.ipv4_mapped is not None:
        source = source.ipv4_mapped
    if wanted == source:
        return None
    public = kind_of(str(wanted)) == "public"
    if not public and wanted.version == source.version and wanted in _block(source):
        return None
    return f"only the address your connection comes from ({source}) is dialled back"


class DialBackResponder:
    """Answers `DialMeBack` by probing the asker's address with a fresh connection."""

    def __init__(self, probe: Probe, *, at_once: int = AT_ONCE, timeout: float = PROBE_TIMEOUT):
        self.probe = probe
        self.at_once = at_once
        self.timeout = timeout
        self.asking: set[bytes] = set()

    async def handle(self, remote: Remote, request: Message) -> Message:
        if not isinstance(request, DialMeBack):
            raise P2PBackupError(f"not a dial-back request: {request.TYPE}")
        try:
            target = parse_address(request.address)
        except ValueError as exc:
            return DialledBack(False, False, str(exc)[:300])
        reason = refusal(remote.far, target)
        if reason is None and remote.node_id in self.asking:
            reason = "one check at a time"
        if reason is None and len(self.asking) >= self.at_once:
            reason = "too many checks under way; ask again later"
        if reason is not None:
            log.debug("not dialling %s back: %s", remote.node_id.hex()[:12], reason)
            return DialledBack(False, False, reason)
        self.asking.add(remote.node_id)
        try:
            await self.probe(target, remote.node_id, self.timeout)
        except NotDialled as exc:
            return DialledBack(False, False, str(exc)[:300])
        except P2PBackupError as exc:
            return DialledBack(False, True, str(exc)[:300])
        finally:
            self.asking.discard(remote.node_id)
        return DialledBack(True, True)
