"""A real peer's ways of being found where it lives: the home router's port
mapping (decision 0038) and its LAN neighbours by mDNS (decision 0039).

Both only make sense on a real network; a peer on loopback has no router and
no LAN, so it starts neither.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from p2pbackup.mesh.saved import SavedMesh
from p2pbackup.net.lan_announce import OPEN_TAG, mesh_tag
from p2pbackup.net.port_mapping import MapperConfig, PortMapper, mappable
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Address
from p2pbackup.peer.lan import LanMeetings
from p2pbackup.peer.peer import Peer


def map_port(
    peer: Peer,
    listen: Address,
    lease: int,
    on_mapped: Callable[[Address | None], None],
    rng: random.Random,
) -> PortMapper | None:
    """Keep `listen`'s port mapped on the home router; the mapped address goes to
    `on_mapped`, to be checked like any other candidate (decision 0041)."""
    if not mappable(listen):
        return None
    mapper = PortMapper(listen, on_mapped, rng, MapperConfig(lease=lease))
    peer.add_task(mapper.run)
    return mapper


def meet_neighbours(peer: Peer, transport: TcpTransport, mesh: SavedMesh | None) -> None:
    """Announce this peer on the LAN under its mesh's tag and meet the others there."""
    known = None if mesh is None or mesh.state is None else mesh.state.mesh
    tag = OPEN_TAG if known is None else mesh_tag(known)
    peer.add_task(LanMeetings(peer, tag, bound=lambda: transport.bound).run)
