"""What a holder's maintenance keeps across a restart, and what it does with a bad file.

A holder surveys a set over spaced rounds (so siblings establish their indices
and one silent sibling fails twice), its peer book meets peers over days; the
state is written, and a fresh process, with a clock that started afresh, reads
it back: every proof, failure and vetting time means what it meant before.
"""

from __future__ import annotations

import random

import cbor2
import pytest

from p2pbackup.dht.peer_book import PeerBook
from p2pbackup.maintenance.config import MaintenanceStats
from p2pbackup.maintenance.rounds import Repair, Rounds
from p2pbackup.maintenance.saved_state import StateUnreadable, decode_state, encode_state
from tests.maintenance.test_rounds import PACK, PEERS, WHOLE, Clock, rounds_for, surveyed

DAY = 86_400.0
# Process clocks start afresh; wall-clock time is what links the two runs.
BEFORE_WALL_MINUS_CLOCK = 1_700_000_000.0
AFTER_WALL_MINUS_CLOCK = BEFORE_WALL_MINUS_CLOCK + 4 * DAY  # down for a while, clock reset


def _surveyed_holder() -> tuple[Rounds, MaintenanceStats, PeerBook]:
    """Holder 0, the set's keeper, after three full surveys 50 s apart; sibling 7 silent
    in the last two."""
    clock = Clock()
    rounds = rounds_for(0, clock=clock)
    silences: list[dict[int, int | None]] = [{}, {7: 7}, {7: 7}]
    for step, silent in enumerate(silences):
        clock.now = 50.0 * step + 10
        proven = WHOLE - set(silent)
        rounds.settle(PACK, 0, surveyed(0, proven, silent), PEERS)
    rounds.stats.rounds = 3
    book = PeerBook()
    book.answered(PEERS[1], 10.0)
    book.answered(PEERS[2], 10.0 + 3 * DAY)
    book.failed_audit(PEERS[2].node_id, 10.0 + 3 * DAY)
    return rounds, rounds.stats, book


def _restarted(data: bytes, clock_now: float = 5.0) -> tuple[Rounds, MaintenanceStats, PeerBook]:
    """A new process's holder 0, its clock at `clock_now`, loaded from `data`."""
    rounds = rounds_for(0, clock=Clock())
    saved = decode_state(data, rounds, AFTER_WALL_MINUS_CLOCK, clock_now, 8192)
    saved.apply(rounds.stats, rounds)
    return rounds, rounds.stats, saved.book


def test_a_restart_keeps_proofs_failures_counters_and_vetting() -> None:
    rounds, stats, book = _surveyed_holder()
    established = {i: rounds.proofs.established(PACK, PEERS[i].node_id) for i in range(10)}
    assert established[1] == 1 and established[7] is None
    kept = {name: dict(table) for name, table in rounds.kept().items()}
    assert kept["failures"] and kept["siblings"]

    data = encode_state(stats, rounds, book, BEFORE_WALL_MINUS_CLOCK)
    again, again_stats, again_book = _restarted(data)

    assert again_stats == stats and again_stats.rounds == 3
    assert {i: again.proofs.established(PACK, PEERS[i].node_id) for i in range(10)} == established
    assert {name: dict(table) for name, table in again.kept().items()} == kept
    # Peer 1 answered since day 0, peer 2 since its failed audit on day 3; it is day 4.
    now = 5.0
    assert again_book.vetted(PEERS[1].node_id, now, 3.9 * DAY)
    assert not again_book.vetted(PEERS[2].node_id, now, 1.1 * DAY)
    assert again_book.vetted(PEERS[2].node_id, now, 0.9 * DAY)
    assert again_book.verified(PEERS[1]) and len(again_book) == 2


def test_the_silent_sibling_stays_counted_across_a_restart() -> None:
    """Failures in a row are counted on, not restarted: sibling 7, silent in two surveys
    before the restart, is lost at the first survey after it and its share rebuilt,
    where a holder that forgot would give it another grace survey."""
    rounds, stats, book = _surveyed_holder()
    data = encode_state(stats, rounds, book, BEFORE_WALL_MINUS_CLOCK)
    again, _, _ = _restarted(data)
    forgetful = rounds_for(0, clock=Clock())
    silent: dict[int, int | None] = {7: 7}
    action = again.settle(PACK, 0, surveyed(0, WHOLE - {7}, silent), PEERS)
    assert isinstance(action, Repair) and action.plan.missing == (7,)
    assert forgetful.settle(PACK, 0, surveyed(0, WHOLE - {7}, silent), PEERS) is None


def test_times_never_land_in_the_future() -> None:
    """A wall clock set back between runs must not make a proof or a vetting younger than
    nothing: loaded times are capped at the new process's now."""
    rounds, stats, book = _surveyed_holder()
    data = encode_state(stats, rounds, book, BEFORE_WALL_MINUS_CLOCK + 30 * DAY)
    _, _, again_book = _restarted(data, clock_now=5.0)
    since = again_book.known_since(PEERS[1].node_id)
    assert since is not None and since <= 5.0


def _bad_states() -> list[bytes]:
    rounds, stats, book = _surveyed_holder()
    good = encode_state(stats, rounds, book, BEFORE_WALL_MINUS_CLOCK)
    plain = cbor2.loads(good)
    wrong_id = dict(plain, failures={"not bytes": 1})
    wrong_row = dict(plain, peers=[[b"\x01" * 20, "h", 1, 0.0]])
    wrong_version = dict(plain, format=99)
    return [
        b"",
        b"\xff\x00garbage",
        good[: len(good) // 2],
        cbor2.dumps([1, 2, 3]),
        cbor2.dumps(wrong_id),
        cbor2.dumps(wrong_row),
        cbor2.dumps(wrong_version),
        random.Random(4).randbytes(500),
    ]


@pytest.mark.parametrize("data", _bad_states())
def test_a_state_that_does_not_decode_changes_nothing(data: bytes) -> None:
    rounds, stats, _ = _surveyed_holder()
    before = {name: dict(table) for name, table in rounds.kept().items()}
    proofs = rounds.proofs
    with pytest.raises(StateUnreadable, match="unreadable maintenance state"):
        decode_state(data, rounds, AFTER_WALL_MINUS_CLOCK, 5.0, 8192)
    assert rounds.proofs is proofs and stats.rounds == 3
    assert {name: dict(table) for name, table in rounds.kept().items()} == before
