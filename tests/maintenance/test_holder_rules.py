"""What a holder trusts before it drops, hands over or rests: decision 0021.

Surveys are filled in by hand, as in `test_rounds`; what is tested is the
rule each decision now follows: a sibling's index counts once proven over
spaced rounds, a copy goes only when closer holders established the whole
set, a share is copied (never moved) and only to a vetted peer in a free
address block, and the keeper is a holder we established and that repairs.
"""

from __future__ import annotations

from p2pbackup.base.ids import distance
from p2pbackup.maintenance.holder_rules import n_nearer, near_enough
from p2pbackup.maintenance.lookups_seen import LookupsSeen
from p2pbackup.maintenance.proofs import ProofHistory
from p2pbackup.maintenance.rounds import AwaitProofs, DropCopy, FullSurvey, HandOver, Repair
from p2pbackup.maintenance.survey import Survey
from p2pbackup.net.contact import Contact
from tests.maintenance.test_rounds import (
    CONFIG,
    PACK,
    PEERS,
    WHOLE,
    Clock,
    establish,
    newcomer_closer_than,
    own_block,
    quiet,
    rounds_for,
    surveyed,
    twin,
)

STEP = CONFIG.audit_interval / 2  # rounds this far apart each count
# Ground closer to the pack than every holder.
GROUND = newcomer_closer_than(PEERS[0])


# ---- proof history -------------------------------------------------------------


def test_an_index_is_established_only_by_proofs_in_spaced_rounds() -> None:
    history = ProofHistory(rounds=3, span=100.0, gap=25.0)
    node = PEERS[1].node_id
    for t in (0.0, 1.0, 2.0, 3.0):  # many passes in one round count once
        history.passed(PACK, node, 1, t)
    assert history.established(PACK, node) is None
    history.passed(PACK, node, 1, 30.0)
    history.passed(PACK, node, 1, 60.0)  # three rounds, but over less than the span
    assert history.established(PACK, node) is None
    history.passed(PACK, node, 1, 100.0)
    assert history.established(PACK, node) == 1


def test_a_failed_audit_or_another_index_starts_the_history_over() -> None:
    history = ProofHistory(rounds=2, span=10.0, gap=5.0)
    node = PEERS[1].node_id
    history.passed(PACK, node, 1, 0.0)
    history.passed(PACK, node, 1, 10.0)
    assert history.established(PACK, node) == 1
    history.flunked(PACK, node)
    history.passed(PACK, node, 1, 20.0)
    assert history.established(PACK, node) is None
    history.passed(PACK, node, 2, 30.0)  # claims another index now
    assert history.established(PACK, node) is None
    history.passed(PACK, node, 2, 40.0)
    assert history.established(PACK, node) == 2


def test_a_failed_audit_reported_by_a_survey_restarts_vetting() -> None:
    told: list[bytes] = []
    rounds = rounds_for(0)
    rounds.failed_audit = told.append
    survey = surveyed(0, WHOLE - {5})
    survey.flunked.add(PEERS[5].node_id)
    survey.lied.add(PEERS[5].node_id)
    rounds.settle(PACK, 0, survey, PEERS)
    assert told == [PEERS[5].node_id]


# ---- dropping a copy -------------------------------------------------------------


def test_a_claim_on_our_index_by_an_unvetted_peer_never_drops_our_copy() -> None:
    clock = Clock()
    honest = {c.node_id for c in PEERS}
    rounds = rounds_for(12, clock=clock, vetted=honest)
    # We (peer 12) hold index 4, which peer 4 lost; all else is held closer than us.
    for _ in range(10):  # established many times over, but never vetted
        found = twin(12, 4, GROUND)
        assert rounds.settle(PACK, 4, found, [*PEERS, GROUND]) != DropCopy()
        clock.now += STEP
    assert rounds.proofs.established(PACK, GROUND.node_id) == 4


def test_a_claim_proven_in_one_round_only_never_drops_our_copy() -> None:
    rounds = rounds_for(3)  # everyone vetted
    for _ in range(10):  # ten surveys, all at one moment: one round
        assert rounds.settle(PACK, 3, twin(3, 3, GROUND), [*PEERS, GROUND]) is None


def test_a_copy_stays_while_an_index_is_held_only_farther_than_us() -> None:
    clock = Clock()
    rounds = rounds_for(12, clock=clock)
    # Index 9 is held by peer 13 alone, farther from the pack than we are.
    for _ in range(6):
        survey = twin(12, 4, PEERS[4], WHOLE - {9})
        survey.claims[PEERS[13].node_id] = (PEERS[13], 9)
        survey.passed[PEERS[13].node_id] = (PEERS[13], 9)
        survey.proven[9] = PEERS[13]
        assert not isinstance(rounds.settle(PACK, 4, survey, PEERS), DropCopy)
        clock.now += STEP


def test_a_copy_stays_while_fewer_than_n_indices_are_established() -> None:
    clock = Clock()
    rounds = rounds_for(12, clock=clock)
    establish_twin = [twin(12, 4, PEERS[4], WHOLE - {7}) for _ in range(6)]
    for survey in establish_twin:
        assert not isinstance(rounds.settle(PACK, 4, survey, PEERS), DropCopy)
        clock.now += STEP


# ---- handing over -------------------------------------------------------------------


def test_a_hand_over_is_a_copy_and_no_second_copy_follows() -> None:
    clock = Clock()
    rounds = rounds_for(12, clock=clock)
    assert rounds.settle(PACK, 3, surveyed(12, WHOLE, index=3), PEERS) == HandOver([PEERS[3]])
    rounds.on_handed_over(PACK, (PEERS[3], 3))
    assert rounds.stats.handed_off == 1
    assert rounds.known_siblings(PACK)  # still ours: nothing was forgotten
    step = rounds.start(PACK, 10)  # the taker's proofs are awaited, the taker audited too
    assert isinstance(step, AwaitProofs) and (PEERS[3], 3) in step.targets
    # Peer 3 holds our index now: no other peer gets a copy while it proves it, though
    # peer 5 (closer, holding nothing this time) could take one.
    clock.now += STEP
    assert rounds.settle(PACK, 3, twin(12, 3, PEERS[3], WHOLE - {5}), PEERS) is None
    clock.now += STEP
    assert rounds.settle(PACK, 3, twin(12, 3, PEERS[3]), PEERS) is None  # proven twice
    clock.now += STEP
    assert rounds.settle(PACK, 3, twin(12, 3, PEERS[3]), PEERS) == DropCopy()


def audited(
    holder: int, index: int, step: AwaitProofs, failing: frozenset[int] = frozenset()
) -> Survey:
    """What auditing `step`'s targets found: each proves its index but those in `failing`."""
    survey = quiet(holder)
    survey.my_index, survey.proven = index, {index: PEERS[holder]}
    for contact, i in step.targets:
        survey.answered.add(contact.node_id)
        survey.claims[contact.node_id] = (contact, i)
        if PEERS.index(contact) in failing:
            survey.failed.add(contact.node_id)
            continue
        survey.passed[contact.node_id] = (contact, i)
        survey.proven[i] = contact
    return survey


def test_after_a_hand_over_audits_alone_build_the_proofs_and_our_copy_goes() -> None:
    clock = Clock()
    rounds = rounds_for(12, clock=clock)
    assert rounds.settle(PACK, 3, surveyed(12, WHOLE - {3}, index=3), PEERS) == HandOver([PEERS[3]])
    rounds.on_handed_over(PACK, (PEERS[3], 3))
    # No lookup and no queries: the known siblings and the taker are audited, round
    # after round, until they established the whole set with us.
    for _ in range(CONFIG.proof_rounds - 1):
        step = rounds.start(PACK, 10)
        assert isinstance(step, AwaitProofs)
        assert {PEERS.index(c) for c, _ in step.targets} == set(range(10))
        assert rounds.on_awaited(PACK, 3, audited(12, 3, step)) is None
        clock.now += STEP
    step = rounds.start(PACK, 10)
    assert isinstance(step, AwaitProofs)
    assert rounds.on_awaited(PACK, 3, audited(12, 3, step)) == DropCopy()


def test_a_failed_audit_while_proofs_are_awaited_brings_the_full_survey() -> None:
    rounds = rounds_for(12)
    rounds.settle(PACK, 3, surveyed(12, WHOLE - {3}, index=3), PEERS)
    rounds.on_handed_over(PACK, (PEERS[3], 3))
    step = rounds.start(PACK, 10)
    assert isinstance(step, AwaitProofs)
    assert rounds.on_awaited(PACK, 3, audited(12, 3, step, frozenset({6}))) == FullSurvey()


def test_a_copy_awaits_by_survey_while_the_closer_holders_we_know_are_too_few() -> None:
    rounds = rounds_for(12)
    # Peer 5 was silent and is not known: the closer holders we know hold nine indices.
    rounds.settle(PACK, 3, surveyed(12, WHOLE - {3, 5}, index=3), PEERS)
    rounds.on_handed_over(PACK, (PEERS[3], 3))
    assert rounds.start(PACK, 10) == FullSurvey()  # audits alone could never let it go


def test_the_last_round_a_copy_is_awaited_surveys_in_full() -> None:
    rounds = rounds_for(12)
    rounds.settle(PACK, 3, surveyed(12, WHOLE - {3}, index=3), PEERS)
    rounds.on_handed_over(PACK, (PEERS[3], 3))
    steps = [rounds.start(PACK, 10) for _ in range(CONFIG.forced_surveys)]
    assert all(isinstance(step, AwaitProofs) for step in steps[:-1])
    assert steps[-1] == FullSurvey()


def test_unvetted_peers_take_no_rebalanced_share_nor_push_us_out() -> None:
    not_3 = {c.node_id for c in PEERS} - {PEERS[3].node_id}
    rounds = rounds_for(12, vetted=not_3)
    assert rounds.settle(PACK, 3, surveyed(12, WHOLE, index=3), PEERS) == HandOver([PEERS[10]])
    few = {c.node_id for c in PEERS[:9]}  # only nine vetted peers are closer than us
    rounds = rounds_for(12, vetted=few)
    assert rounds.settle(PACK, 3, surveyed(12, WHOLE, index=3), PEERS) is None


def test_no_taker_in_an_address_block_that_holds_a_share_of_the_set() -> None:
    def blocks(contact: Contact) -> str:
        return own_block(PEERS[5] if contact == PEERS[3] else contact)  # 3 sits with 5

    rounds = rounds_for(12, blocks=blocks)
    assert rounds.settle(PACK, 3, surveyed(12, WHOLE, index=3), PEERS) is None


# ---- keepers and repair ------------------------------------------------------------------


def test_a_closer_newcomer_proving_a_claim_does_not_take_over_repair() -> None:
    clock = Clock()
    rounds = rounds_for(0, clock=clock)
    establish(rounds, clock, 0, WHOLE)
    found = twin(0, 5, GROUND, WHOLE - {6, 7, 8, 9})  # under the threshold
    action = rounds.settle(PACK, 0, found, [*PEERS, GROUND])
    assert isinstance(action, Repair) and action.plan.missing == (6, 7, 8, 9)


def test_a_keeper_that_leaves_the_set_unrepaired_is_passed_over() -> None:
    clock = Clock()
    rounds = rounds_for(1, clock=clock)
    establish(rounds, clock, 1, WHOLE)  # peer 0 keeps
    wanting = WHOLE - {6, 7, 8, 9}
    for _ in range(CONFIG.lost_after - 1):
        assert rounds.settle(PACK, 1, surveyed(1, wanting), PEERS) is None
        clock.now += STEP
    action = rounds.settle(PACK, 1, surveyed(1, wanting), PEERS)
    assert isinstance(action, Repair) and action.plan.missing == (6, 7, 8, 9)
    # Found whole again, peer 0 keeps again.
    assert rounds.settle(PACK, 1, surveyed(1, WHOLE), PEERS) is None
    assert rounds._views[PACK].keeper == PEERS[0].node_id


def test_rebuilt_shares_go_to_vetted_peers_first_one_per_free_block() -> None:
    def blocks(contact: Contact) -> str:
        return own_block(PEERS[2] if contact == PEERS[7] else contact)  # 7 sits with 2

    not_6 = {c.node_id for c in PEERS} - {PEERS[6].node_id}
    rounds = rounds_for(0, vetted=not_6, blocks=blocks)
    action = rounds.settle(PACK, 0, surveyed(0, WHOLE - {6, 7, 8, 9}), PEERS)
    assert isinstance(action, Repair)
    assert action.plan.targets == (*PEERS[8:], PEERS[7], PEERS[6])


def test_ground_ids_are_closer_than_every_holder() -> None:
    assert all(distance(GROUND.node_id, PACK) < distance(c.node_id, PACK) for c in PEERS)


# ---- surveys without a lookup: decision 0056 -------------------------------------


def answered_by(holder: int, proven: frozenset[int], others: range) -> Survey:
    """A survey by `holder` in which `proven` proved their shares and `others` said
    they hold none."""
    survey = surveyed(holder, proven)
    for i in others:
        survey.on_holding(PEERS[i], None, None)
    return survey


def test_n_answers_from_the_table_with_no_failed_audit_need_no_lookup() -> None:
    near = [c for c in PEERS if c != PEERS[0]]  # the table: every peer but ourselves
    assert near_enough(answered_by(0, WHOLE, range(10, 11)), near, 5)
    # A set short of shares, where n peers answered, is surveyed as well as a
    # lookup would: the lookup finds the same peers; an index nobody claimed
    # looks wider before it is rebuilt (`look_wider`).
    assert near_enough(answered_by(0, WHOLE - {6, 7}, range(10, 13)), near, 5)
    # Four answered peers closer than us: a lookup would have to find six more.
    near = [c for c in PEERS if c != PEERS[4]]
    assert near_enough(answered_by(4, WHOLE, range(10, 11)), near, 5)


def test_too_few_answers_a_failed_audit_or_the_edge_bring_the_lookup_back() -> None:
    near = [c for c in PEERS if c != PEERS[0]]
    # Nine answered: the table's nearest are gone, or the table knows too few.
    assert not near_enough(answered_by(0, WHOLE, range(0)), near, 5)
    assert not near_enough(answered_by(0, WHOLE, range(10, 14)), near[:9], 5)
    survey = answered_by(0, WHOLE, range(10, 12))
    survey.flunked.add(PEERS[3].node_id)
    assert not near_enough(survey, near, 5)
    # Five answered peers closer than us: newcomers the table never met could push
    # us out of the n closest, and only a lookup finds them to hand our share to.
    near = [c for c in PEERS if c != PEERS[5]]
    assert not near_enough(answered_by(5, WHOLE, range(10, 11)), near, 5)


# ---- the edge trusts a table its lookup found complete: decision 0071 ------------


def test_an_edge_holder_skips_the_lookup_only_while_its_table_is_trusted() -> None:
    near = [c for c in PEERS if c != PEERS[5]]
    survey = answered_by(5, WHOLE, range(10, 11))
    assert near_enough(survey, near, 5, edge_trusted=True)
    # Trust stands in for the edge alone: too few answers or a failed audit still look up.
    assert not near_enough(answered_by(5, WHOLE, range(0)), near[:9], 5, edge_trusted=True)
    survey.flunked.add(PEERS[3].node_id)
    assert not near_enough(survey, near, 5, edge_trusted=True)


def test_a_lookup_that_found_only_the_tables_peers_is_trusted_for_a_while() -> None:
    clock = [0.0]
    seen = LookupsSeen(PEERS[5].node_id, 3 * 3600.0, lambda: clock[0])
    asked = {c.node_id for c in PEERS[:10]}
    seen.looked_up(PACK, PEERS[:12], asked)  # farther peers than us it may add freely
    assert seen.table_trusted(PACK)
    clock[0] = 3 * 3600.0
    assert not seen.table_trusted(PACK)  # the edge looks up again


def test_a_lookup_that_found_a_closer_peer_the_table_missed_trusts_nothing() -> None:
    clock = [0.0]
    seen = LookupsSeen(PEERS[5].node_id, 3 * 3600.0, lambda: clock[0])
    seen.looked_up(PACK, PEERS[:12], {c.node_id for c in PEERS[:10]})
    seen.looked_up(PACK, PEERS[:12], {c.node_id for c in PEERS[1:10]})  # PEERS[0] is new
    assert not seen.table_trusted(PACK)
    seen.looked_up(PACK, PEERS[:12], {c.node_id for c in PEERS[:10]})
    seen.keep_only(set())  # the set is no longer held
    assert not seen.table_trusted(PACK)


def test_n_nearer_asks_whether_the_nth_nearest_known_is_nearer_than_us() -> None:
    me = PEERS[4].node_id
    assert n_nearer(me, PACK, PEERS[:4], 4)  # peers 0-3 are all nearer than peer 4
    assert not n_nearer(me, PACK, PEERS[:3] + PEERS[5:6], 4)  # the fourth is farther
    assert not n_nearer(me, PACK, PEERS[:3], 4)  # fewer than n known
