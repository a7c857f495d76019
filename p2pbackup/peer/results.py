"""What the peer's control operations answer, typed until they leave the process.

`contracts.plain` turns each into the map `--json` prints; the field order
here is the order of its keys. Summaries and statistics the backup layer
already gives as maps (a snapshot's summary, an engine's counts) stay maps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from p2pbackup.peer.contracts import FLATTEN, OMIT_NONE

Summary = Mapping[str, Any]


@dataclass(frozen=True)
class BackupResult:
    snapshot_id: str
    short_id: str
    parent: str | None
    stats: Summary = field(metadata=FLATTEN)
    # The engine process's peak memory and CPU time, when the backup ran in one.
    engine_process: Summary | None = field(default=None, metadata=OMIT_NONE)
    seconds: float = 0.0
    # The K-of-N of this run's new packs, and the peers that refused a share and why
    # (`{"peer": id, "reason": ...}`; their shares went to other peers).
    redundancy: str | None = field(default=None, metadata=OMIT_NONE)
    refused: list[Summary] | None = field(default=None, metadata=OMIT_NONE)
    # New packs placed with fewer than n shares (but `happy` at least): how many, the
    # fewest shares one got, and n.
    short_packs: Summary | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class RestoreResult:
    snapshot_id: str
    stats: Summary = field(metadata=FLATTEN)
    engine_process: Summary | None = field(default=None, metadata=OMIT_NONE)
    seconds: float = 0.0


@dataclass(frozen=True)
class SnapshotList:
    snapshots: list[Summary]


@dataclass(frozen=True)
class ListedEntry:
    path: str
    type: str
    size: int
    mode: int
    mtime: float
    target: str | None = field(default=None, metadata=OMIT_NONE)  # a symlink's


@dataclass(frozen=True)
class Listing:
    snapshot: str
    entries: list[ListedEntry]


@dataclass(frozen=True)
class HealthReport:
    """What `check` found, or what `repair` found and then rebuilt."""

    snapshots: int
    packs: int
    healthy: int
    degraded: int
    unrecoverable: int
    min_live_shares: int
    unrecoverable_packs: list[str]
    index_errors: list[str]
    shares_rebuilt: int | None = field(default=None, metadata=OMIT_NONE)  # repair only
    # repair only: recoverable packs still under n shares after it (too few peers took them).
    still_short: int | None = field(default=None, metadata=OMIT_NONE)
    chunks_read: int | None = field(default=None, metadata=OMIT_NONE)  # --read-data only
    chunk_errors: list[str] | None = field(default=None, metadata=OMIT_NONE)
    # repair --reencode only: packs encoded again to the owner's k/n, and those that
    # could not be (each kept its old encoding).
    packs_reencoded: int | None = field(default=None, metadata=OMIT_NONE)
    reencode_errors: list[str] | None = field(default=None, metadata=OMIT_NONE)
    # Holders that answered nothing for a stall interval (hung, asleep, or cut off
    # without a reset), by node id: their shares counted as missing.
    hung_peers: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class PruneResult:
    dry_run: bool
    snapshots: int
    packs_kept: int
    packs_released: int
    packs_repacked: int
    bytes_repacked: int
    packs_written: int
    shares_dropped: int
    seconds: float


@dataclass(frozen=True)
class ForgetResult:
    dry_run: bool
    keep: list[Summary]  # each with the reasons it is kept
    forget: list[Summary]
    prune: PruneResult | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class RenewResult:
    packs: int
    packs_renewed: int
    shares_renewed: int
    lease_expiry: int
    seconds: float


@dataclass(frozen=True)
class PeerState:
    """Who and where the running peer is; also its home's state file."""

    node_id: str
    listen: str
    pid: int


@dataclass(frozen=True)
class StatusResult:
    state: PeerState = field(metadata=FLATTEN)
    routing_table_size: int
    records_held: int
    joined: bool
    shares_held: int
    bytes_used: int
    capacity: int
    capacity_human: str
    # What owners can still place here: the capacity left or the disk's free space (less
    # a reserve), whichever is less; and the disk's free space itself.
    free: int
    free_human: str
    disk_free: int
    maintenance: Summary
    owner: str | None
    # The router's mapping of this peer's port (external, protocol, lease_expires_in).
    port_mapping: Summary | None = None
    # How others can reach this peer: state, confirmed addresses, routes, observed hosts.
    reachability: Summary | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class KnownPeer:
    node_id: str
    address: str
    # When it last showed life to this peer (wall clock), and how many seconds ago.
    last_seen: float | None = None
    seen_seconds_ago: float | None = None


@dataclass(frozen=True)
class PeerList:
    peers: list[KnownPeer]
    # Seconds unheard after which a peer may well be gone: nothing it does is that rare.
    quiet_after: float = 0.0


@dataclass(frozen=True)
class RecordWritten:
    key: str
    seq: int
    acks: int


@dataclass(frozen=True)
class RecordFound:
    """A record read back; only `found` when there is none."""

    found: bool
    owner: str | None = field(default=None, metadata=OMIT_NONE)
    name: bytes | None = field(default=None, metadata=OMIT_NONE)
    kind: str | None = field(default=None, metadata=OMIT_NONE)
    seq: int | None = field(default=None, metadata=OMIT_NONE)
    values: list[bytes] | None = field(default=None, metadata=OMIT_NONE)
