"""When an owner's leases next need renewing, kept across restarts.

A peer used to renew every lease a minute after each start, in case the
machine had been off: each start then cost every holder a lookup, a query and
a signed, durably written lease per pack, however recently they had been
renewed or placed. The floor says how long every pack the owner placed is kept
at least; the first renewal after a start waits until the regular schedule
would have come, and comes at once only when that time is past.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from p2pbackup.base.files import write_atomically

FLOOR_NAME = "leases.json"  # beside the owner's catalog, whose packs it speaks of


@dataclass(frozen=True)
class LeaseFloor:
    """Every pack in the catalog is kept until `expiry` at least, under leases of
    `lease_seconds` (a changed lease period makes the floor say nothing)."""

    expiry: int
    lease_seconds: int

    def due(self, lease_seconds: int, renew_interval: float) -> float | None:
        """The wall time the next renewal is due, or None if the floor is no guide."""
        if lease_seconds != self.lease_seconds:
            return None
        return self.expiry - self.lease_seconds + renew_interval


def read_floor(path: Path) -> LeaseFloor | None:
    """The saved floor; None when there is none or it cannot be read (renew soon)."""
    try:
        saved = json.loads(path.read_bytes())
        floor = LeaseFloor(int(saved["expiry"]), int(saved["lease_seconds"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return floor


def write_floor(path: Path, floor: LeaseFloor) -> None:
    """Saved durably: a floor lost in a crash only brings a renewal sooner."""
    data = {"expiry": floor.expiry, "lease_seconds": floor.lease_seconds}
    write_atomically(path, json.dumps(data).encode())
