"""What the CLI may ask its peer: one type per control request, both ends agreeing.

The CLI builds a request and sends `to_args()`; the peer rebuilds it with
`from_args`, which refuses a missing or wrong field with one line (a client
of the socket need not be our CLI). The maps are the ones the control socket
has always carried, key for key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Self

from p2pbackup.backup.retention import RetentionPolicy
from p2pbackup.peer.contracts import Args, ContractError, raw, strings, text, whole

# A pack whose used blobs fill less than this share of it is repacked by prune.
REPACK_BELOW = 0.5
_KEEP_COUNTS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")


def _flag(args: Args, name: str) -> bool:
    return bool(args.get(name))


def _repack_below(args: Args) -> float:
    value = args.get("repack_below", REPACK_BELOW)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ContractError("`repack_below` is a fraction from 0 (never repack) to 1")
    return float(value)


@dataclass(frozen=True)
class NoArgs:
    """The request of an operation that takes no arguments (any given are ignored)."""

    @classmethod
    def from_args(cls, args: Args) -> Self:
        return cls()

    def to_args(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class BackupRequest:
    paths: tuple[str, ...]
    tags: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    host: str | None = None  # None: this machine's name
    # 'K-of-N' for this run's new packs, and its happy; None: the owner's setting.
    redundancy: str | None = None
    happy: int | None = None

    @classmethod
    def from_args(cls, args: Args) -> Self:
        paths = strings(args, "paths")
        if not paths:
            raise ContractError("name at least one path to back up")
        host = args.get("host")
        redundancy = args.get("redundancy")
        if redundancy is not None and not isinstance(redundancy, str):
            raise ContractError("`redundancy` is text such as 2-of-4")
        happy = args.get("happy")
        if happy is not None and (not isinstance(happy, int) or isinstance(happy, bool)):
            raise ContractError("`happy` is a whole number")
        return cls(
            paths,
            strings(args, "tags"),
            strings(args, "excludes"),
            host if isinstance(host, str) else None,
            redundancy,
            happy,
        )

    def to_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "paths": list(self.paths),
            "tags": list(self.tags),
            "excludes": list(self.excludes),
        }
        if self.host is not None:
            args["host"] = self.host
        if self.redundancy is not None:
            args["redundancy"] = self.redundancy
        if self.happy is not None:
            args["happy"] = self.happy
        return args


@dataclass(frozen=True)
class LsRequest:
    snapshot: str
    path: str = ""  # only this path inside the snapshot

    @classmethod
    def from_args(cls, args: Args) -> Self:
        return cls(text(args, "snapshot"), str(args.get("path") or ""))

    def to_args(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "path": self.path}


@dataclass(frozen=True)
class RestoreRequest:
    snapshot: str
    target: str  # absolute: the peer's working folder is not the caller's
    includes: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args: Args) -> Self:
        snapshot, target = text(args, "snapshot"), text(args, "target")
        if not os.path.isabs(target):
            raise ContractError("the restore target must be an absolute path")
        return cls(snapshot, target, strings(args, "includes"))

    def to_args(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "target": self.target, "includes": list(self.includes)}


@dataclass(frozen=True)
class CheckRequest:
    read_data: bool = False  # also fetch every pack and open every chunk

    @classmethod
    def from_args(cls, args: Args) -> Self:
        return cls(_flag(args, "read_data"))

    def to_args(self) -> dict[str, Any]:
        return {"read_data": self.read_data}


@dataclass(frozen=True)
class RepairRequest:
    # Also encode again every pack whose k/n differ from the owner's redundancy.
    reencode: bool = False

    @classmethod
    def from_args(cls, args: Args) -> Self:
        return cls(_flag(args, "reencode"))

    def to_args(self) -> dict[str, Any]:
        return {"reencode": self.reencode}


@dataclass(frozen=True)
class PruneRequest:
    dry_run: bool = False
    repack_below: float = REPACK_BELOW

    @classmethod
    def from_args(cls, args: Args) -> Self:
        return cls(_flag(args, "dry_run"), _repack_below(args))

    def to_args(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "repack_below": self.repack_below}


@dataclass(frozen=True)
class ForgetRequest:
    """Forget the snapshots named, or those the keep rules do not keep; never both."""

    snapshots: tuple[str, ...] = ()
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_tags: tuple[str, ...] = ()
    prune: bool = False  # then release what no kept snapshot uses
    repack_below: float = REPACK_BELOW
    dry_run: bool = False

    @classmethod
    def from_args(cls, args: Args) -> Self:
        request = cls(
            strings(args, "snapshots"),
            keep_last=whole(args, "keep_last"),
            keep_hourly=whole(args, "keep_hourly"),
            keep_daily=whole(args, "keep_daily"),
            keep_weekly=whole(args, "keep_weekly"),
            keep_monthly=whole(args, "keep_monthly"),
            keep_tags=strings(args, "keep_tags"),
            prune=_flag(args, "prune"),
            repack_below=_repack_below(args),
            dry_run=_flag(args, "dry_run"),
        )
        empty = request.policy().is_empty()
        if request.snapshots and not empty:
            raise ContractError("name snapshots or give --keep-* rules, not both")
        if not request.snapshots and empty:
            raise ContractError(
                "give at least one --keep-* rule or snapshot id; forget never drops everything"
            )
        return request

    def policy(self) -> RetentionPolicy:
        counts = {name: getattr(self, name) for name in _KEEP_COUNTS}
        return RetentionPolicy(**counts, keep_tags=frozenset(self.keep_tags))

    def pruning(self) -> PruneRequest:
        return PruneRequest(self.dry_run, self.repack_below)

    def to_args(self) -> dict[str, Any]:
        return {
            "snapshots": list(self.snapshots),
            **{name: getattr(self, name) for name in _KEEP_COUNTS},
            "keep_tags": list(self.keep_tags),
            "prune": self.prune,
            "repack_below": self.repack_below,
            "dry_run": self.dry_run,
        }


@dataclass(frozen=True)
class RecordPutRequest:
    name: bytes
    value: bytes
    kind: str = "value"  # "set": a set record; anything else a value record

    @classmethod
    def from_args(cls, args: Args) -> Self:
        refusal = "record_put needs bytes `name` and `value`"
        name, value = raw(args, "name", refusal), raw(args, "value", refusal)
        return cls(name, value, str(args.get("kind", "value")))

    def to_args(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "kind": self.kind}


@dataclass(frozen=True)
class RecordGetRequest:
    key: bytes

    @classmethod
    def from_args(cls, args: Args) -> Self:
        return cls(raw(args, "key", "record_get needs a 20-byte `key`", size=20))

    def to_args(self) -> dict[str, Any]:
        return {"key": self.key}
