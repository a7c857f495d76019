"""Wiring a TCP peer's addresses: what it advertises, and checking that others can dial it.

Kept apart from the service so its part reads in one place: the machine's
interfaces order dial attempts (same LAN first), each handshake's observed
address feeds the tally, the peer answers other peers' dial-back requests
with a fresh probe, and keeps its own advertised addresses checked.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from functools import partial

from p2pbackup.dht.dial_me_back import DialBackResponder, DialMeBack
from p2pbackup.dht.reachability_check import ReachabilityCheck
from p2pbackup.net.interfaces import local_interfaces
from p2pbackup.net.probe import probe
from p2pbackup.net.reachability import Reachability
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Address
from p2pbackup.peer.peer import Peer


def keep_addresses(
    peer: Peer, transport: TcpTransport, advertise: Iterable[Address], rng: random.Random
) -> ReachabilityCheck:
    """Set `peer` up to learn, check and advertise its addresses; the check it runs."""
    interfaces = local_interfaces()
    transport.interfaces = interfaces
    state = Reachability(transport.bound, advertised=advertise, interfaces=interfaces)
    check = ReachabilityCheck(
        peer.dht, state, transport.set_advertised, rng, bound=lambda: transport.bound
    )
    transport.on_handshake = check.heard
    peer.add_handler(DialMeBack, DialBackResponder(partial(probe, transport)).handle)
    peer.add_task(check.run)
    return check
