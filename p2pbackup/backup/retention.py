"""Retention policy for `forget`: which snapshots to keep, and why.

The rules follow restic's `forget`, so that users who know restic get no
surprises:

* ``keep_last n`` keeps the n newest snapshots.
* ``keep_hourly/daily/weekly/monthly/yearly n`` walk the snapshots from the
  newest backwards, cut time into buckets (an hour, a day, an ISO week, a
  month, a year, in the given time zone) and keep the newest snapshot of each
  of the n most recent buckets *that hold a snapshot*. Empty buckets do not
  count: ``keep_daily 7`` after a fortnight's holiday still keeps 7 snapshots.
* ``keep_tags`` keeps every snapshot that carries any of the tags; tags are
  not counted.
* A snapshot kept by any rule is kept; the rest are forgotten.
* The rules apply to each group separately (by default, snapshots of the same
  host and paths), so a laptop's daily backups never push out a server's.

Restic 0.17 also keeps the oldest snapshot of a group when a time rule has
counts left over; this module does not, so a count means exactly "this many
buckets" and the result is the plain union described above.

This module does no I/O and reads no clock: callers pass the snapshot list
and the time zone, which keeps every decision reproducible in tests and lets
`forget --dry-run` show exactly what a real run would do.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "COUNT_FIELDS",
    "Decision",
    "RetentionPolicy",
    "SnapshotLike",
    "apply_policy",
    "default_group",
]


class SnapshotLike(Protocol):
    """What the policy needs of a snapshot; `p2pbackup.backup.snapshot.Snapshot` fits.

    A protocol rather than the concrete class so that the policy can be tested
    (and reused by the CLI's dry-run) without building sealed snapshots.
    """

    @property
    def snapshot_id(self) -> bytes: ...
    @property
    def time(self) -> float: ...
    @property
    def host(self) -> str: ...
    @property
    def paths(self) -> tuple[str, ...]: ...
    @property
    def tags(self) -> tuple[str, ...]: ...


# The rules that keep a number of snapshots, by their field names.
COUNT_FIELDS = (
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
)

EMPTY_POLICY_REASON = "policy is empty"


@dataclass(frozen=True)
class RetentionPolicy:
    """How many snapshots of each kind to keep; 0 switches a rule off."""

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_tags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Reject nonsense at construction: a negative count silently meaning
        # "none" (or restic's "unlimited") would make a typo delete backups.
        for name in COUNT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        # A bare string would become a set of its letters; catch that early.
        if isinstance(self.keep_tags, str):
            raise TypeError("keep_tags must be a collection of tags, not a str")
        if not isinstance(self.keep_tags, frozenset):
            object.__setattr__(self, "keep_tags", frozenset(self.keep_tags))

    def is_empty(self) -> bool:
        """True when no rule is set.

        `forget` must refuse such a policy: applied literally it would forget
        every snapshot, which is never what someone who forgot a flag meant.
        """
        return not self.keep_tags and all(getattr(self, name) == 0 for name in COUNT_FIELDS)


@dataclass(frozen=True)
class Decision:
    """The outcome of `apply_policy`.

    ``keep`` and ``forget`` partition the input and are each sorted oldest
    first. ``reasons`` maps the id of every kept snapshot to the rules that
    kept it, in rule order (e.g. ``["last snapshot", "daily snapshot"]``), so
    `forget` can explain itself.
    """

    keep: list[SnapshotLike]
    forget: list[SnapshotLike]
    reasons: dict[bytes, list[str]]


def default_group(snapshot: SnapshotLike) -> Hashable:
    """Restic's default grouping: the same host and the same set of paths."""
    return (snapshot.host, snapshot.paths)


def _hour(t: datetime.datetime) -> Hashable:
    return (t.year, t.month, t.day, t.hour)


def _day(t: datetime.datetime) -> Hashable:
    return (t.year, t.month, t.day)


def _week(t: datetime.datetime) -> Hashable:
    # ISO weeks: 2020-12-31 and 2021-01-03 both lie in 2020-W53, so a week
    # that straddles New Year is one bucket, not two half-weeks.
    iso = t.isocalendar()
    return (iso.year, iso.week)


def _month(t: datetime.datetime) -> Hashable:
    return (t.year, t.month)


def _year(t: datetime.datetime) -> Hashable:
    return t.year


_TIME_RULES: tuple[tuple[str, str, Callable[[datetime.datetime], Hashable]], ...] = (
    ("keep_hourly", "hourly snapshot", _hour),
    ("keep_daily", "daily snapshot", _day),
    ("keep_weekly", "weekly snapshot", _week),
    ("keep_monthly", "monthly snapshot", _month),
    ("keep_yearly", "yearly snapshot", _year),
)


def _order_key(snapshot: SnapshotLike) -> tuple[float, bytes]:
    # Ties in time are broken by id so the result never depends on input order.
    return (snapshot.time, snapshot.snapshot_id)


def _apply_to_group(
    newest_first: list[SnapshotLike],
    policy: RetentionPolicy,
    tz: datetime.tzinfo,
    reasons: dict[bytes, list[str]],
) -> None:
    """Add to `reasons` every snapshot of one group that some rule keeps."""

    def keep(snapshot: SnapshotLike, why: str) -> None:
        reasons.setdefault(snapshot.snapshot_id, []).append(why)

    for snapshot in newest_first[: policy.keep_last]:
        keep(snapshot, "last snapshot")

    local = [datetime.datetime.fromtimestamp(s.time, tz) for s in newest_first]
    for name, why, bucket_of in _TIME_RULES:
        count: int = getattr(policy, name)
        if count == 0:
            continue
        # Walking newest first, the first snapshot seen in a bucket is that
        # bucket's newest. A set (not "differs from the previous bucket")
        # keeps buckets distinct even where a DST change moves local time
        # backwards across midnight.
        seen: set[Hashable] = set()
        for snapshot, when in zip(newest_first, local, strict=True):
            if len(seen) == count:
                break
            bucket = bucket_of(when)
            if bucket not in seen:
                seen.add(bucket)
                keep(snapshot, why)

    if policy.keep_tags:
        for snapshot in newest_first:
            for tag in sorted(policy.keep_tags.intersection(snapshot.tags)):
                keep(snapshot, f"has tag {tag}")


def apply_policy(
    snapshots: Sequence[SnapshotLike],
    policy: RetentionPolicy,
    *,
    tz: datetime.tzinfo = datetime.UTC,
    group_by: Callable[[SnapshotLike], Hashable] | None = None,
) -> Decision:
    """Split `snapshots` into those `policy` keeps and those it forgets.

    `tz` decides where hours, days, weeks, months and years begin; it is a
    parameter (UTC by default) so results do not depend on the machine.
    `group_by` maps a snapshot to its group; the policy applies to each
    group on its own. By default groups are (host, paths), as in restic.

    An empty policy keeps everything (reason ``"policy is empty"``), as in
    restic: this function must never be the reason every snapshot goes.
    Callers should still refuse an empty policy (`RetentionPolicy.is_empty`)
    and tell the user.

    Raises `ValueError` if two snapshots share an id, since the decision and
    its reasons are keyed by id.
    """
    ordered = sorted(snapshots, key=_order_key)
    ids = [s.snapshot_id for s in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError("snapshot ids must be unique")

    if policy.is_empty():
        return Decision(
            keep=ordered,
            forget=[],
            reasons={s.snapshot_id: [EMPTY_POLICY_REASON] for s in ordered},
        )

    grouping = default_group if group_by is None else group_by
    groups: dict[Hashable, list[SnapshotLike]] = {}
    for snapshot in reversed(ordered):
        groups.setdefault(grouping(snapshot), []).append(snapshot)

    found: dict[bytes, list[str]] = {}
    for newest_first in groups.values():
        _apply_to_group(newest_first, policy, tz, found)

    keep = [s for s in ordered if s.snapshot_id in found]
    forget = [s for s in ordered if s.snapshot_id not in found]
    # Reasons listed oldest first too, and in a fixed rule order per snapshot.
    reasons = {s.snapshot_id: found[s.snapshot_id] for s in keep}
    return Decision(keep=keep, forget=forget, reasons=reasons)
