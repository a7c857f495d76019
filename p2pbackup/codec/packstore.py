"""Where packs go: the interface the backup and restore engines write to and read from.

The engines never see shares, peers or descriptors; the mesh implementation
erasure-codes and places a pack, or gathers k shares and rebuilds it. Tests
use an in-memory store with the same contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from p2pbackup.codec.packs import pack_matches
from p2pbackup.errors import P2PBackupError


def named_pack(pack_id: bytes, reason: str) -> str:
    """`reason`, led by the pack it concerns unless it names that pack first already."""
    name = f"pack {pack_id.hex()[:12]}"
    return reason if reason.startswith(name) else f"{name}: {reason}"


class PackUnavailable(P2PBackupError):
    """Too few good shares of a pack could be fetched to rebuild it."""


@dataclass(frozen=True)
class PackReceipt:
    pack_id: bytes
    k: int
    n: int
    placed: int
    bytes_sent: int


class PackStore(Protocol):
    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        """Store a pack; raises `P2PBackupError` with a reason when it cannot be placed."""
        ...

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        """The pack's bytes, verified against its id; raises `PackUnavailable`.
        `size_hint`, when not 0, is about how long the pack is, as far as the caller
        knows (a restore, from its index): a store may plan its transfers by it."""
        ...


class MemoryPackStore:
    """A pack store in a dict: for engine tests, not for backups.

    `verify=False` hands back whatever bytes are stored, like a store that skips
    the pack id check, so tests can prove the engines' own per-chunk check."""

    def __init__(self, *, verify: bool = True) -> None:
        self.packs: dict[bytes, bytes] = {}
        self.puts = 0
        self.gets = 0
        self.verify = verify

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        if not pack_matches(pack_id, data):
            raise P2PBackupError(f"pack {pack_id.hex()[:12]} does not match its id")
        self.packs[pack_id] = data
        self.puts += 1
        return PackReceipt(pack_id, 1, 1, 1, len(data))

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        self.gets += 1
        try:
            data = self.packs[pack_id]
        except KeyError:
            raise PackUnavailable(f"pack {pack_id.hex()[:12]} is not stored") from None
        if self.verify and not pack_matches(pack_id, data):
            raise PackUnavailable(f"pack {pack_id.hex()[:12]} is corrupted")
        return data
