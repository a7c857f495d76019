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
    # Contacts of one address block a routing table keeps per bucket and in all, and a
    # lookup keeps among its k nearest (go-ethereum's bucketIPLimit/tableIPLimit): ids
    # are free, addresses are not, so a flood from a few networks fills a few slots.
    bucket_block_limit: int = 2
    table_block_limit: int = 10
    lookup_block_limit: int = 2
    # Dial-backs that check a claimed listen address: how many at once, and how long
    # before one address is tried again (whatever id claimed it).
    dial_backs: int = 8
    dial_back_cooldown: float = 60.0
    # A peer whose request timed out is passed over by lookups for this long, unless it
    # shows a sign of life first (`SilentPeers`); 0 asks it every time.
    silent_backoff: float = 60.0

    def __post_init__(self) -> None:
        if self.read_quorum + self.write_quorum <= self.replicas:
            raise ValueError("R + W must exceed N for reads to see the newest write")
        if not 0 < self.write_quorum <= self.replicas or not 0 < self.read_quorum <= self.replicas:
            raise ValueError("quorums must lie between 1 and N")
        if self.replicas > self.k:
            raise ValueError("N cannot exceed k")
        if min(self.bucket_block_limit, self.table_block_limit, self.lookup_block_limit) < 1:
            raise ValueError("block limits must be at least 1")
