"""Replica sets, lookups and dial-backs spread over address blocks, sans-IO."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.base.ids import id_int
from p2pbackup.cli.localmesh import CLI
from p2pbackup.dht.dial_back import DialBacks
from p2pbackup.dht.lookup import Lookup
from p2pbackup.dht.replicas import spread_over_blocks
from p2pbackup.net.blocks import block_of
from p2pbackup.net.contact import Contact


def _contact(n: int, block: int) -> Contact:
    return Contact(n.to_bytes(20, "big"), f"10.{block >> 8}.{block & 255}.9", 4000)


@settings(max_examples=100, deadline=None)
@given(
    blocks=st.lists(st.integers(0, 5), min_size=1, max_size=30),
    count=st.integers(1, 8),
)
def test_replicas_take_one_per_block_while_blocks_last(blocks: list[int], count: int) -> None:
    contacts = [_contact(i + 1, b) for i, b in enumerate(blocks)]  # nearest first
    chosen = spread_over_blocks(contacts, count, block_of)
    assert len(chosen) == min(count, len(contacts))
    assert chosen == [c for c in contacts if c in chosen]  # still nearest first
    distinct = len(set(blocks))
    per_block = [sum(1 for c in chosen if block_of(c) == block_of(o)) for o in chosen]
    if distinct >= count:
        assert max(per_block) == 1
    # The first of each block is never passed over for a second of another.
    firsts = {block_of(c): c for c in reversed(contacts)}
    assert set(sorted(firsts.values(), key=contacts.index)[:count]) <= set(chosen)


def test_a_flood_nearer_the_target_fills_two_places_of_a_lookups_window() -> None:
    target = bytes(20)
    flood = [_contact(i + 1, 7) for i in range(30)]  # all nearer than any honest peer
    honest = [_contact(1000 + i, 100 + i) for i in range(30)]
    lookup = Lookup(target, k=20, alpha=3, block_of=block_of, per_block=2)
    lookup.seed(flood + honest)
    asked: list[Contact] = []
    while queries := lookup.next_queries():
        for contact in queries:
            asked.append(contact)
            lookup.on_reply(contact, flood)  # everyone names the flood
    result = lookup.result()
    assert len(result) == 20
    assert sum(1 for c in result if c in flood) == 2
    assert sum(1 for c in asked if c in flood) == 2
    assert [id_int(c.node_id) for c in result] == sorted(id_int(c.node_id) for c in result)


def test_without_a_block_function_a_lookup_keeps_the_plain_k_nearest() -> None:
    lookup = Lookup(bytes(20), k=5, alpha=5)
    contacts = [_contact(i + 1, 7) for i in range(10)]
    lookup.seed(contacts)
    for contact in lookup.next_queries():
        lookup.on_reply(contact, [])
    assert lookup.result() == contacts[:5]


def test_dial_backs_try_an_address_once_per_cooldown_and_a_bounded_number_at_once() -> None:
    checks = DialBacks(cooldown=60.0, queued=3)
    victim = ("127.0.0.1", 9999)
    assert checks.offer(victim, 0.0)
    assert not checks.offer(victim, 1.0)  # pending already
    checks.done(victim)
    assert not checks.offer(victim, 59.0)  # tried within the minute, whoever claims it
    assert checks.offer(victim, 60.0)
    assert checks.offer(("10.0.0.1", 1), 60.0) and checks.offer(("10.0.0.2", 1), 60.0)
    assert not checks.offer(("10.0.0.3", 1), 60.0)  # three pending: the queue is full
    assert len(checks.pending) == 3


@pytest.mark.parametrize(
    ("option", "code", "error"),
    [
        (
            ["--exempt-blocks", "loopback,wan"],
            2,  # a bad option value is a usage error, as for --vetting: decision 0033
            "error: --exempt-blocks: unknown address kind(s) wan: choose from lan, loopback\n",
        ),
        (
            ["--vetting", "soon"],
            2,
            "error: cannot read duration 'soon'; use forms like 30s, 10m, 1h30m, 7d\n",
        ),
    ],
)
def test_serve_refuses_a_bad_trust_option_in_one_line(
    tmp_path: Path, option: list[str], code: int, error: str
) -> None:
    run = subprocess.run(
        [*CLI, "--home", f"{tmp_path}/home", "serve", *option],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == code
    assert run.stderr == error
