"""Whom a pack's fetch asks and when a silent holder counts as stalled, without a network."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.net.contact import Contact
from p2pbackup.shares.gathering import Gathering, HolderMemory, Pace, StallRule

RULE = StallRule(floor=1.0, ceiling=10.0, factor=4.0, window=8, remember=100.0)
PEERS = [Contact(bytes([i]) * 32, "10.0.0.1", 4000 + i) for i in range(12)]


def gathering(needed: int = 3, memory: HolderMemory | None = None) -> Gathering:
    g = Gathering(memory or HolderMemory(RULE), Pace(RULE), needed)
    g.offer(PEERS)
    return g


def test_the_pace_starts_at_the_ceiling_and_follows_the_slow_end_within_bounds() -> None:
    pace = Pace(RULE)
    assert pace.stall_after() == 10.0  # nothing seen yet: patient
    pace.observe(0.1)
    assert pace.stall_after() == 1.0  # 4 x 0.1, raised to the floor
    for _ in range(7):
        pace.observe(0.5)
    assert pace.stall_after() == pytest.approx(2.0)
    pace.observe(30.0)
    assert pace.stall_after() == 10.0  # a slow link lengthens it, up to the ceiling


def test_asks_k_plus_a_spare_nearest_first_then_replaces_a_stalled_one() -> None:
    g = gathering()
    assert g.to_ask(0.0) == PEERS[:4]
    assert g.to_ask(0.0) == []  # all four live: nothing more
    assert g.deadline() == 10.0
    assert g.check(9.9) == []
    assert g.check(10.0) == PEERS[:4]  # nothing came from any of them
    assert g.to_ask(10.0) == PEERS[4:8]  # four more, the stalled ones still open
    assert g.in_flight == 8 and g.active == 4


def test_a_stalled_holders_late_share_still_counts_and_clears_it() -> None:
    g = gathering()
    g.to_ask(0.0)
    g.check(10.0)
    assert g.memory.suspect(PEERS[0].node_id, 10.0)
    g.got_share(PEERS[0], 12.0, good=True)
    assert g.gathered == 1
    assert not g.memory.suspect(PEERS[0].node_id, 12.0)


def test_whichever_k_arrive_first_win() -> None:
    g = gathering()
    g.to_ask(0.0)
    for peer in PEERS[1:4]:
        g.got_share(peer, 0.2, good=True)
    assert g.enough and g.to_ask(0.3) == []


def test_a_bad_share_or_none_asks_the_next_holder() -> None:
    g = gathering()
    g.to_ask(0.0)
    g.got_share(PEERS[0], 0.1, good=False)
    g.got_nothing(PEERS[1])
    assert g.to_ask(0.1) == PEERS[4:6]
    assert not g.memory.suspect(PEERS[0].node_id, 0.1)  # it answered: not a suspect


def test_a_remembered_holder_is_asked_only_after_every_other() -> None:
    memory = HolderMemory(RULE)
    memory.stalled(PEERS[0].node_id, 0.0)
    memory.failed(PEERS[2].node_id, 0.0)
    g = gathering(memory=memory)
    assert g.to_ask(1.0) == [PEERS[1], PEERS[3], PEERS[4], PEERS[5]]
    g.offer(PEERS)  # offered again: ignored
    assert g.to_ask(1.0) == []
    wide = gathering(needed=11, memory=memory)
    healthy = [p for p in PEERS if p not in (PEERS[0], PEERS[2])]
    assert wide.to_ask(1.0) == [*healthy, PEERS[0], PEERS[2]]  # the suspects, last of all
    # Of the suspects, the one marked most lately goes last: likeliest still gone.
    memory.failed(PEERS[0].node_id, 2.0)
    assert memory.ranked([PEERS[0], PEERS[1], PEERS[2]], 3.0) == [PEERS[1], PEERS[2], PEERS[0]]
    # A holder's mark fades after `remember`: it takes its place again.
    assert not memory.suspect(PEERS[0].node_id, 200.0)


def test_a_holder_counts_one_stall_however_many_packs_wait_on_it() -> None:
    memory = HolderMemory(RULE)
    for start in (0.0, 1.0, 2.0):  # three packs that asked it at once
        g = gathering(memory=memory)
        g.to_ask(start)
        g.check(start + 10.0)
    assert memory.stalls[PEERS[0].node_id] == 1


def test_exhausted_only_once_nothing_is_queued_or_open() -> None:
    g = Gathering(HolderMemory(RULE), Pace(RULE), 3)
    g.offer(PEERS[:2])
    g.to_ask(0.0)
    assert not g.exhausted
    g.failed(PEERS[0], 0.1)
    g.got_nothing(PEERS[1])
    assert g.exhausted and not g.enough


@settings(max_examples=200, deadline=None)
@given(
    needed=st.integers(1, 5),
    events=st.lists(st.tuples(st.integers(0, 3), st.floats(0.0, 20.0)), max_size=60),
)
def test_never_asks_a_holder_twice_and_keeps_enough_requests_live(
    needed: int, events: list[tuple[int, float]]
) -> None:
    """Whatever happens to the requests, no holder is asked twice for one pack, and
    while holders are left, as many live requests run as shares are missing plus one."""
    g = gathering(needed)
    asked: list[Contact] = []
    now = 0.0
    for kind, step in events:
        now += step
        asked += g.to_ask(now)
        if g.enough:
            break
        if not g.queue_left:
            break
        assert g.active >= needed - g.gathered + 1
        open_ = [c for c in asked if g.is_open(c)]
        if kind == 3:
            g.check(now)
            continue
        target = open_[int(step * 7) % len(open_)]
        if kind == 0:
            g.got_share(target, now, good=True)
        elif kind == 1:
            g.got_nothing(target)
        else:
            g.failed(target, now)
    assert len(asked) == len({c.node_id for c in asked})


def test_a_suspect_heard_from_since_is_trusted_again_after_a_while() -> None:
    """A holder that hung and came back stayed suspect for the whole `remember` (10 min):
    placements passed it over and packs were placed short with every peer up."""
    heard: dict[bytes, float] = {}
    rule = StallRule(remember=600.0, heard_after=60.0)
    memory = HolderMemory(rule, last_heard=heard.get)
    memory.stalled(b"a", 100.0)
    heard[b"a"] = 90.0  # heard before it hung: still suspect
    assert memory.suspect(b"a", 200.0)
    heard[b"a"] = 130.0  # answered a ping since
    assert memory.suspect(b"a", 159.0)  # not before `heard_after`: a wedged disk may answer pings
    assert not memory.suspect(b"a", 160.0)
    assert not memory.suspect(b"a", 161.0)  # forgotten, not only skipped
    memory.failed(b"b", 100.0)  # never heard from again: the whole `remember`
    assert memory.suspect(b"b", 699.0) and not memory.suspect(b"b", 701.0)


def test_a_request_waiting_for_the_link_does_not_stall_and_runs_from_its_let_out() -> None:
    g = gathering()
    asked = g.to_ask(0.0)
    g.waits(asked[3])
    assert g.any_waiting
    assert g.check(10.0) == asked[:3]  # the three on the link; not the one waiting
    g.let_out(asked[3], 12.0, lambda: 5.0)  # its bytes take 5 s at the measured rate
    assert not g.any_waiting
    assert g.deadline() == 12.0 + 10.0 + 5.0
    assert g.check(26.9) == []
    assert g.check(27.0) == [asked[3]]


def test_a_request_let_out_at_once_keeps_its_start_and_adds_its_bytes_time() -> None:
    g = gathering()
    for contact in g.to_ask(0.0):
        g.let_out(contact, 3.0, lambda: 2.0)  # none waited: their clocks ran from the ask
    assert g.deadline() == 0.0 + 10.0 + 2.0


def test_a_holder_sending_no_byte_stalls_at_the_bare_interval_whatever_its_bytes_take() -> None:
    """Shares out to holders that then hung set the measured rate near nothing, so
    their bytes' time stretched each stall to the slowest rate's, 20 s and more, while
    every other request waited for the room they held."""
    g = gathering()
    asked = g.to_ask(0.0)
    for contact in asked:
        g.let_out(contact, 0.0, lambda: 20.0)
        g.heard(contact, 1000, 0.0)
    assert g.deadline() == 10.0  # the bare interval: when silence would count
    g.heard(asked[0], 1000, 10.0)  # silent throughout
    g.heard(asked[1], 1000, 10.0)
    for contact in asked[2:]:
        g.heard(contact, 5000, 10.0)  # sending: their bytes keep their time
    assert g.check(10.0) == asked[:2]
    assert g.deadline() == 20.0  # the senders are looked at again an interval on
    for contact in asked[2:]:
        g.heard(contact, 9000, 20.0)
    assert g.check(29.9) == []
    assert g.check(30.0) == asked[2:]  # still in time for their bytes' 30 s, then not


def test_without_a_count_of_bytes_a_request_stalls_on_its_bytes_time_as_before() -> None:
    g = gathering()
    asked = g.to_ask(0.0)
    for contact in asked:
        g.let_out(contact, 0.0, lambda: 20.0)
        g.heard(contact, None, 0.0)  # the simulator's transport cannot tell
    assert g.deadline() == 30.0
    assert g.check(29.9) == []
    assert g.check(30.0) == asked


def test_a_request_let_out_after_waiting_listens_afresh() -> None:
    g = gathering()
    asked = g.to_ask(0.0)
    g.waits(asked[0])
    g.heard(asked[0], 7, 0.0)  # not on the link yet: nothing to judge
    assert g.check(10.0) == asked[1:]  # the others, on the link since the ask
    g.let_out(asked[0], 50.0, lambda: 20.0)
    g.heard(asked[0], 7, 50.0)
    assert g.check(59.9) == []
    assert g.check(60.0) == [asked[0]]  # silent for the bare interval since its let-out
