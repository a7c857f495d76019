"""Retention policy for `forget`: restic's rules on concrete histories, and their invariants."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.backup.retention import (
    COUNT_FIELDS,
    Decision,
    RetentionPolicy,
    SnapshotLike,
    apply_policy,
)
from p2pbackup.backup.snapshot import Snapshot

UTC = datetime.UTC


@dataclass(frozen=True)
class Snap:
    """The five fields the policy reads; lighter than a real `Snapshot`."""

    snapshot_id: bytes
    time: float
    host: str = "laptop"
    paths: tuple[str, ...] = ("/home",)
    tags: tuple[str, ...] = ()


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> float:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def sid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def history(*times: float, host: str = "laptop", tags: tuple[str, ...] = ()) -> list[Snap]:
    """Snapshots with ids 0, 1, 2... in the order given."""
    return [Snap(sid(n), t, host=host, tags=tags) for n, t in enumerate(times)]


def ids(snaps: Sequence[SnapshotLike]) -> list[int]:
    return [int.from_bytes(s.snapshot_id, "big") for s in snaps]


def kept(decision: Decision) -> set[bytes]:
    return {s.snapshot_id for s in decision.keep}


# --- concrete, restic-like examples -------------------------------------------------------


def test_keep_last_three_of_ten() -> None:
    snaps = history(*(at(2024, 3, d) for d in range(1, 11)))
    decision = apply_policy(snaps, RetentionPolicy(keep_last=3))
    assert ids(decision.keep) == [7, 8, 9]
    assert ids(decision.forget) == [0, 1, 2, 3, 4, 5, 6]
    assert decision.reasons == {sid(n): ["last snapshot"] for n in (7, 8, 9)}


def test_keep_daily_keeps_newest_of_each_day() -> None:
    snaps = history(
        at(2024, 5, 1, 9),
        at(2024, 5, 1, 18),  # newest of May 1
        at(2024, 5, 2, 8),
        at(2024, 5, 2, 13),
        at(2024, 5, 2, 23, 59),  # newest of May 2
        at(2024, 5, 3, 0, 0),  # newest of May 3 (midnight belongs to the new day)
        at(2024, 5, 4, 7),
        at(2024, 5, 4, 7, 30),  # newest of May 4
    )
    decision = apply_policy(snaps, RetentionPolicy(keep_daily=3))
    assert ids(decision.keep) == [4, 5, 7]
    assert all(r == ["daily snapshot"] for r in decision.reasons.values())
    assert ids(apply_policy(snaps, RetentionPolicy(keep_daily=10)).keep) == [1, 4, 5, 7]


def test_keep_daily_counts_only_days_that_have_snapshots() -> None:
    # A three-week gap: keep-daily 3 still keeps three snapshots, reaching back
    # past the gap instead of keeping only what fell in the last three calendar days.
    snaps = history(at(2024, 1, 1), at(2024, 1, 2), at(2024, 1, 3), at(2024, 1, 24))
    assert ids(apply_policy(snaps, RetentionPolicy(keep_daily=3)).keep) == [1, 2, 3]


def test_keep_weekly_uses_iso_weeks_across_new_year() -> None:
    # 2020-12-28 (Mon) .. 2021-01-03 (Sun) is ISO week 2020-W53; 2021-01-04 starts 2021-W01.
    snaps = history(
        at(2020, 12, 21),  # 2020-W52
        at(2020, 12, 28),  # 2020-W53
        at(2020, 12, 31),  # 2020-W53
        at(2021, 1, 1),  # 2020-W53, though a new calendar year
        at(2021, 1, 3, 23),  # 2020-W53, its newest
        at(2021, 1, 4),  # 2021-W01
    )
    assert ids(apply_policy(snaps, RetentionPolicy(keep_weekly=2)).keep) == [4, 5]
    assert ids(apply_policy(snaps, RetentionPolicy(keep_weekly=3)).keep) == [0, 4, 5]


def test_keep_weekly_iso_week_belonging_to_next_year() -> None:
    # 2019-12-30 (Mon) is in ISO week 2020-W01, together with 2020-01-02.
    snaps = history(at(2019, 12, 29), at(2019, 12, 30), at(2020, 1, 2))
    assert ids(apply_policy(snaps, RetentionPolicy(keep_weekly=2)).keep) == [0, 2]


def test_keep_monthly() -> None:
    snaps = history(
        at(2023, 11, 15),
        at(2023, 12, 1),
        at(2023, 12, 31, 23, 59),  # newest of December
        at(2024, 1, 1, 0, 0),
        at(2024, 1, 20),  # newest of January
        at(2024, 3, 2),  # February has none and does not count
        at(2024, 3, 9),  # newest of March
    )
    decision = apply_policy(snaps, RetentionPolicy(keep_monthly=3))
    assert ids(decision.keep) == [2, 4, 6]
    assert set(decision.reasons) == {sid(2), sid(4), sid(6)}


def test_keep_yearly_and_hourly() -> None:
    snaps = history(at(2022, 6, 1), at(2022, 12, 31), at(2023, 3, 1), at(2024, 2, 29))
    assert ids(apply_policy(snaps, RetentionPolicy(keep_yearly=2)).keep) == [2, 3]
    hourly = history(at(2024, 1, 1, 10, 5), at(2024, 1, 1, 10, 55), at(2024, 1, 1, 11, 0))
    assert ids(apply_policy(hourly, RetentionPolicy(keep_hourly=5)).keep) == [1, 2]


def test_keep_tag_keeps_every_tagged_snapshot_uncounted() -> None:
    snaps = [
        Snap(sid(0), at(2024, 1, 1), tags=("release",)),
        Snap(sid(1), at(2024, 1, 2), tags=("nightly",)),
        Snap(sid(2), at(2024, 1, 3), tags=("release", "nightly")),
        Snap(sid(3), at(2024, 1, 4)),
        Snap(sid(4), at(2024, 1, 5), tags=("manual",)),
    ]
    decision = apply_policy(snaps, RetentionPolicy(keep_tags=frozenset({"release", "manual"})))
    assert ids(decision.keep) == [0, 2, 4]
    assert decision.reasons[sid(0)] == ["has tag release"]
    assert decision.reasons[sid(4)] == ["has tag manual"]
    both = apply_policy(snaps, RetentionPolicy(keep_tags=frozenset({"release", "nightly"})))
    assert both.reasons[sid(2)] == ["has tag nightly", "has tag release"]


def test_rules_combine_as_a_union_with_every_reason() -> None:
    snaps = [
        Snap(sid(0), at(2023, 6, 1), tags=("keep",)),
        Snap(sid(1), at(2024, 1, 10)),
        Snap(sid(2), at(2024, 1, 31)),
        Snap(sid(3), at(2024, 2, 1, 9)),
        Snap(sid(4), at(2024, 2, 1, 17)),
        Snap(sid(5), at(2024, 2, 2, 9)),
    ]
    policy = RetentionPolicy(
        keep_last=1, keep_daily=2, keep_monthly=2, keep_tags=frozenset({"keep"})
    )
    decision = apply_policy(snaps, policy)
    assert ids(decision.keep) == [0, 2, 4, 5]
    assert ids(decision.forget) == [1, 3]
    assert decision.reasons == {
        sid(0): ["has tag keep"],
        sid(2): ["monthly snapshot"],
        sid(4): ["daily snapshot"],
        sid(5): ["last snapshot", "daily snapshot", "monthly snapshot"],
    }


def test_groups_are_handled_separately() -> None:
    laptop = history(*(at(2024, 4, d) for d in (1, 2, 3)), host="laptop")
    server = [Snap(sid(10 + n), at(2024, 4, d), host="server") for n, d in enumerate((4, 5, 6))]
    other_paths = [Snap(sid(20), at(2024, 4, 7), paths=("/etc",))]
    decision = apply_policy(laptop + server + other_paths, RetentionPolicy(keep_last=1))
    assert ids(decision.keep) == [2, 12, 20]
    # Grouping by host only merges the laptop's two path sets.
    by_host = apply_policy(
        laptop + server + other_paths, RetentionPolicy(keep_last=1), group_by=lambda s: s.host
    )
    assert ids(by_host.keep) == [12, 20]
    # One group for everything: a plain keep-last over the whole list.
    single = apply_policy(
        laptop + server + other_paths, RetentionPolicy(keep_last=1), group_by=lambda s: None
    )
    assert ids(single.keep) == [20]


def test_time_zone_decides_where_days_begin() -> None:
    # 20:00 and 03:00 UTC on consecutive days are one evening in New York (UTC-5).
    snaps = history(at(2020, 12, 31, 20), at(2021, 1, 1, 3))
    policy = RetentionPolicy(keep_daily=5, keep_yearly=5)
    assert ids(apply_policy(snaps, policy).keep) == [0, 1]
    new_york = datetime.timezone(datetime.timedelta(hours=-5))
    local = apply_policy(snaps, policy, tz=new_york)
    assert ids(local.keep) == [1]
    assert local.reasons[sid(1)] == ["daily snapshot", "yearly snapshot"]


def test_output_is_oldest_first_and_independent_of_input_order() -> None:
    snaps = history(at(2024, 1, 3), at(2024, 1, 1), at(2024, 1, 2), at(2024, 1, 1))
    decision = apply_policy(snaps, RetentionPolicy(keep_last=2))
    assert ids(decision.keep) == [2, 0]
    assert ids(decision.forget) == [1, 3]  # the time tie is broken by id
    assert list(decision.reasons) == [sid(2), sid(0)]
    assert apply_policy(list(reversed(snaps)), RetentionPolicy(keep_last=2)) == decision


def test_empty_policy_is_empty_and_keeps_everything() -> None:
    policy = RetentionPolicy()
    assert policy.is_empty()
    snaps = history(at(2024, 1, 1), at(2024, 1, 2))
    decision = apply_policy(snaps, policy)
    assert decision.forget == []
    assert ids(decision.keep) == [0, 1]
    assert decision.reasons == {sid(0): ["policy is empty"], sid(1): ["policy is empty"]}
    for name in COUNT_FIELDS:
        assert not RetentionPolicy(**{name: 1}).is_empty()  # type: ignore[arg-type]
    assert not RetentionPolicy(keep_tags=frozenset({"x"})).is_empty()


def test_no_snapshots() -> None:
    assert apply_policy([], RetentionPolicy(keep_last=3)) == Decision([], [], {})


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="keep_daily"):
        RetentionPolicy(keep_daily=-1)
    with pytest.raises(TypeError):
        RetentionPolicy(keep_last=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RetentionPolicy(keep_last=True)
    with pytest.raises(TypeError):
        RetentionPolicy(keep_tags="daily")  # type: ignore[arg-type]
    coerced = RetentionPolicy(keep_tags={"a"})  # type: ignore[arg-type]
    assert coerced.keep_tags == frozenset({"a"})
    assert hash(coerced) == hash(RetentionPolicy(keep_tags=frozenset({"a"})))


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        apply_policy([Snap(sid(1), 1.0), Snap(sid(1), 2.0)], RetentionPolicy(keep_last=1))


def test_accepts_real_snapshots() -> None:
    def real(n: int, when: float) -> Snapshot:
        return Snapshot(
            snapshot_id=sid(n),
            time=when,
            host="h",
            paths=("/p",),
            tags=(),
            parent=None,
            tree=bytes(32),
            index=(),
            files=0,
            size=0,
        )

    snaps = [real(0, at(2024, 1, 1)), real(1, at(2024, 1, 2))]
    decision = apply_policy(snaps, RetentionPolicy(keep_last=1))
    assert decision.keep == [snaps[1]]
    assert decision.forget == [snaps[0]]


# --- properties ------------------------------------------------------------------------

BASE = at(2019, 12, 20, 0)  # histories cross New Year and an ISO week 53
TAGS = ("a", "b", "c")
ZONES = (
    UTC,
    datetime.timezone(datetime.timedelta(hours=-5)),
    datetime.timezone(datetime.timedelta(hours=12, minutes=45)),
)


def _build(rows: list[tuple[int, int, str, tuple[str, ...], frozenset[str]]]) -> list[Snap]:
    return [
        Snap(sid(i), BASE + day * 86_400 + second, host, paths, tuple(sorted(tags)))
        for i, (day, second, host, paths, tags) in enumerate(rows)
    ]


# Histories with many same-day, same-hour and same-second collisions.
snapshot_lists = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 10), st.integers(0, 900)),
        st.one_of(st.sampled_from([0, 3600, 43_200, 86_399]), st.integers(0, 86_399)),
        st.sampled_from(["laptop", "server"]),
        st.sampled_from([("/home",), ("/etc", "/var")]),
        st.frozensets(st.sampled_from(TAGS), max_size=2),
    ),
    max_size=40,
).map(_build)


policies = st.builds(
    RetentionPolicy,
    keep_last=st.integers(0, 6),
    keep_hourly=st.integers(0, 6),
    keep_daily=st.integers(0, 6),
    keep_weekly=st.integers(0, 6),
    keep_monthly=st.integers(0, 6),
    keep_yearly=st.integers(0, 3),
    keep_tags=st.frozensets(st.sampled_from(TAGS), max_size=2),
)
zones = st.sampled_from(ZONES)


def by_group(snaps: Sequence[Snap]) -> dict[Hashable, list[Snap]]:
    """Each (host, paths) group, newest first."""
    groups: dict[Hashable, list[Snap]] = {}
    for s in sorted(snaps, key=lambda s: (s.time, s.snapshot_id), reverse=True):
        groups.setdefault((s.host, s.paths), []).append(s)
    return groups


@settings(max_examples=150, deadline=None)
@given(snapshot_lists, policies, zones)
def test_keep_and_forget_partition_the_input(
    snaps: list[Snap], policy: RetentionPolicy, tz: datetime.tzinfo
) -> None:
    decision = apply_policy(snaps, policy, tz=tz)
    keep, forget = kept(decision), {s.snapshot_id for s in decision.forget}
    assert keep.isdisjoint(forget)
    assert keep | forget == {s.snapshot_id for s in snaps}
    assert len(decision.keep) + len(decision.forget) == len(snaps)
    assert set(decision.reasons) == keep
    assert all(decision.reasons.values())
    for part in (decision.keep, decision.forget):
        assert part == sorted(part, key=lambda s: (s.time, s.snapshot_id))
    assert apply_policy(list(reversed(snaps)), policy, tz=tz) == decision


@settings(max_examples=150, deadline=None)
@given(snapshot_lists, policies, st.integers(0, 8), zones)
def test_keep_last_keeps_the_newest_of_each_group(
    snaps: list[Snap], policy: RetentionPolicy, n: int, tz: datetime.tzinfo
) -> None:
    decision = apply_policy(snaps, dataclasses.replace(policy, keep_last=n), tz=tz)
    for newest_first in by_group(snaps).values():
        for s in newest_first[:n]:
            assert "last snapshot" in decision.reasons[s.snapshot_id]
        for s in newest_first[n:]:
            assert "last snapshot" not in decision.reasons.get(s.snapshot_id, [])
    if n == 0:
        return  # keep_last=0 alone is the empty policy, which keeps everything
    only_last = apply_policy(snaps, RetentionPolicy(keep_last=n), tz=tz)
    expected = {s.snapshot_id for g in by_group(snaps).values() for s in g[:n]}
    assert kept(only_last) == expected


@settings(max_examples=200, deadline=None)
@given(
    snapshot_lists,
    policies,
    st.sampled_from((*COUNT_FIELDS, "keep_tags")),
    st.integers(1, 4),
    st.sampled_from(TAGS),
    zones,
)
def test_raising_a_count_never_forgets_a_kept_snapshot(
    snaps: list[Snap],
    policy: RetentionPolicy,
    field: str,
    more: int,
    tag: str,
    tz: datetime.tzinfo,
) -> None:
    if field == "keep_tags":
        raised = dataclasses.replace(policy, keep_tags=policy.keep_tags | {tag})
    else:
        raised = dataclasses.replace(policy, **{field: getattr(policy, field) + more})
    if policy.is_empty():
        return  # the empty policy keeps everything by design; `forget` refuses it
    assert kept(apply_policy(snaps, policy, tz=tz)) <= kept(apply_policy(snaps, raised, tz=tz))


BUCKETS: dict[str, Callable[[datetime.datetime], Hashable]] = {
    "keep_hourly": lambda t: t.strftime("%Y-%m-%d %H"),
    "keep_daily": lambda t: t.date(),
    "keep_weekly": lambda t: t.isocalendar()[:2],
    "keep_monthly": lambda t: (t.year, t.month),
    "keep_yearly": lambda t: t.year,
}


@settings(max_examples=200, deadline=None)
@given(snapshot_lists, st.sampled_from(sorted(BUCKETS)), st.integers(1, 8), zones)
def test_time_rule_keeps_newest_of_the_n_newest_buckets(
    snaps: list[Snap], field: str, n: int, tz: datetime.tzinfo
) -> None:
    """Compare each time rule with a direct reading of its definition."""
    expected: set[bytes] = set()
    for newest_first in by_group(snaps).values():
        newest_in_bucket: dict[Hashable, Snap] = {}
        for s in newest_first:
            bucket = BUCKETS[field](datetime.datetime.fromtimestamp(s.time, tz))
            newest_in_bucket.setdefault(bucket, s)
        # dicts keep insertion order, so these are the buckets from newest back.
        expected |= {s.snapshot_id for s in list(newest_in_bucket.values())[:n]}
    assert kept(apply_policy(snaps, RetentionPolicy(**{field: n}), tz=tz)) == expected  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(policies)
def test_is_empty_means_no_rule(policy: RetentionPolicy) -> None:
    no_rule = not policy.keep_tags and all(getattr(policy, f) == 0 for f in COUNT_FIELDS)
    assert policy.is_empty() == no_rule
