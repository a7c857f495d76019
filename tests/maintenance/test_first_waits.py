"""A holder's first rounds of a set it never surveyed: it waits once for a nearer
holder's audit, and only when its table knows a peer nearer the pack."""

from __future__ import annotations

from p2pbackup.maintenance.rounds import FullSurvey, Skip, VetAuditor
from tests.maintenance.test_rounds import (
    PACK,
    PEERS,
    WHOLE,
    Clock,
    rounds_for,
    surveyed,
)


def test_a_holder_with_a_nearer_peer_waits_one_round_then_surveys() -> None:
    rounds = rounds_for(4)
    assert rounds.start(PACK, 10) == Skip()
    assert rounds.start(PACK, 10) == FullSurvey()
    assert rounds.start(PACK, 10) == FullSurvey()  # once per set, never again
    assert rounds.stats.keeper_heard == 0


def test_the_holder_nearest_the_pack_in_its_table_surveys_at_once() -> None:
    assert rounds_for(0).start(PACK, 10) == FullSurvey()
    # Peer 4 whose table knows nobody nearer than itself: it keeps the set.
    assert rounds_for(4, table=PEERS[4:]).start(PACK, 10) == FullSurvey()


def test_a_holder_audited_while_it_waited_vets_its_auditor_instead_of_surveying() -> None:
    rounds = rounds_for(4)
    assert rounds.start(PACK, 10) == Skip()
    rounds.audit_log.note(PACK, PEERS[0].node_id, PEERS[0])  # the keeper's round came
    assert rounds.start(PACK, 10) == VetAuditor(PEERS[0].node_id, PEERS[0])


def test_a_set_surveyed_before_never_waits() -> None:
    clock = Clock()
    rounds = rounds_for(4, clock=clock)
    rounds.settle(PACK, 4, surveyed(4, WHOLE - {0}, silent={0: 0}), PEERS)
    rounds._views.clear()  # as after a restart: views are not kept, siblings are
    assert rounds.start(PACK, 10) == FullSurvey()


def test_forgetting_a_pack_lets_a_share_of_it_held_again_wait_again() -> None:
    rounds = rounds_for(4)
    assert rounds.start(PACK, 10) == Skip()
    rounds.forget(PACK)
    assert rounds.start(PACK, 10) == Skip()
