"""DHT parameters; defaults suit a home mesh, tests shorten the intervals."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DhtConfig:
    k: int = 20
    alpha: int = 3
    replicas: int = 5  # N: record copies
    write_quorum: int = 3  # W
    read_quorum: int = 3  # R
    rpc_timeout: float = 5.0
    refresh_interval: float = 3600.0
    republish_interval: float = 3600.0
    stale_after_failures: int = 2
    # A full bucket pings its oldest contact for a newcomer only if that contact
    # was not heard from for this long (BEP 5 uses 15 minutes): in a busy mesh,
    # pinging on every newcomer was a fifth of all traffic.
    questionable_after: float = 900.0
    # Address kinds ("loopback", "lan") whose every address counts as a block of its
    # own in the per-block limits: meshes on one host or LAN need it, nothing else.
    exempt_blocks: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.read_quorum + self.write_quorum <= self.replicas:
            raise ValueError("R + W must exceed N for reads to see the newest write")
        if not 0 < self.write_quorum <= self.replicas or not 0 < self.read_quorum <= self.replicas:
            raise ValueError("quorums must lie between 1 and N")
        if self.replicas > self.k:
            raise ValueError("N cannot exceed k")
