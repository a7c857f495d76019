"""A mesh of real peer processes spread over the testbed's hosts.

The same `LocalMesh` the demo and the loopback tests use, with each peer's
commands run in its host's network namespace and each peer listening on all
of its host's interfaces, as a user's machine would: it must find out for
itself how others reach it (a mapped port, a relay, its LAN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from netbed.bed import Host
from p2pbackup.cli.localmesh import LocalMesh

FIRST_PORT = 7000


@dataclass
class NetMesh(LocalMesh):
    """Peer i runs on `places[i]` (append a host before `add_peer`); two peers on one
    host take consecutive ports."""

    places: Sequence[Host] = field(default_factory=list)
    find_routers_and_neighbours: bool = True
    first_port: int = FIRST_PORT  # two meshes on one testbed listen on different ports

    @classmethod
    def on(
        cls, root: Path, places: Sequence[Host], *serve_args: str, first_port: int = FIRST_PORT
    ) -> NetMesh:
        return cls(
            root, len(places), serve_args=serve_args, places=list(places), first_port=first_port
        )

    def command_prefix(self, index: int) -> list[str]:
        return self.places[index].command([])

    def listen_address(self, index: int, port: int) -> str:
        host = self.places[index]
        earlier = sum(1 for other in self.places[:index] if other == host)
        return f"0.0.0.0:{self.first_port + earlier}"

    def host_of(self, index: int) -> Host:
        return self.places[index]
