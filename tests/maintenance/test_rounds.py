"""A holder's round-by-round decisions about its share sets, with no network at all.

Surveys here are filled in by hand (who claimed, who proved, who was silent):
the audits themselves are tested with the survey. What is tested is what the
holder makes of them: who keeps the set, when a failing holder's share is
rebuilt, when a round is skipped or cut short, and when a full survey returns.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from p2pbackup.base.ids import distance
from p2pbackup.codec.descriptor import describe_pack
from p2pbackup.codec.erasure import encode_pack
from p2pbackup.codec.packs import pack_id_of
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.maintenance.config import MaintenanceConfig
from p2pbackup.maintenance.holder_rules import FirstHand
from p2pbackup.maintenance.rounds import (
    AuditSiblings,
    AwaitProofs,
    DropCopy,
    FullSurvey,
    HandOver,
    Nearby,
    Repair,
    Rounds,
    Skip,
    VetAuditor,
)
from p2pbackup.maintenance.survey import Survey
from p2pbackup.net.contact import Contact
from p2pbackup.shares.audit_log import AuditLog

OWNER = OwnerKeys.from_master(bytes(32)).identity
_DATA = random.Random(11).randbytes(3000)
PACK = pack_id_of(_DATA)
DESCRIPTOR = describe_pack(OWNER, PACK, encode_pack(_DATA, 3, 10), 3, len(_DATA), 2**40)
DESCRIPTOR_BYTES = DESCRIPTOR.to_bytes()
_ids = random.Random(5)
# Nearest to the pack first: peer i holds share i for i < 10; 10 and up hold none.
PEERS = sorted(
    (Contact(_ids.randbytes(20), "10.0.0.1", 4000 + i) for i in range(14)),
    key=lambda c: distance(c.node_id, PACK),
)
CONFIG = MaintenanceConfig(audit_interval=100.0, lost_after=2, quiet_rounds=3, light_rounds=5)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def table_of(contacts: list[Contact]) -> Nearby:
    """A routing table that knows exactly these contacts."""
    return lambda target, count: sorted(contacts, key=lambda c: distance(c.node_id, target))[:count]


def own_block(contact: Contact) -> str:
    """Every test peer in a block of its own, unless a test says otherwise."""
    return f"{contact.host}:{contact.port}"


def rounds_for(
    holder: int,
    *,
    clock: Clock | None = None,
    table: list[Contact] | None = None,
    seed: int = 1,
    vetted: set[bytes] | None = None,
    blocks: Callable[[Contact], str] = own_block,
) -> Rounds:
    """Peer `holder`'s rounds; every peer is vetted unless `vetted` names the few that are."""
    clock = clock or Clock()
    log = AuditLog(clock)
    nearby = table_of(PEERS[:10] if table is None else table)
    first_hand = FirstHand(lambda node_id: vetted is None or node_id in vetted, blocks)
    rng = random.Random(seed)
    return Rounds(PEERS[holder].node_id, CONFIG, rng, log, nearby, first_hand=first_hand, now=clock)


def surveyed(
    holder: int,
    proven: set[int] | frozenset[int],
    silent: dict[int, int | None] | None = None,
    index: int | None = None,
) -> Survey:
    """What a full survey by `holder` (of share `index`, by default its own number)
    found: `proven` peers proved their own index; `silent` peers (peer -> the index
    we knew it held, if any) did not answer."""
    index = holder if index is None else index
    survey = Survey(PACK, DESCRIPTOR, PEERS[holder], index, DESCRIPTOR_BYTES)
    for i in proven - {index}:
        survey.answered.add(PEERS[i].node_id)
        survey.claims[PEERS[i].node_id] = (PEERS[i], i)
        survey.proven[i] = PEERS[i]
        survey.passed[PEERS[i].node_id] = (PEERS[i], i)
    for i, known in (silent or {}).items():
        survey.on_silent(PEERS[i], known)
    return survey


WHOLE = frozenset(range(10))


def twin(holder: int, index: int, other: Contact, proven: frozenset[int] = WHOLE) -> Survey:
    """A survey by `holder` (holding `index`) in which `other` proves that index too."""
    survey = surveyed(holder, proven, index=index)
    survey.answered.add(other.node_id)
    survey.claims[other.node_id] = (other, index)
    survey.passed[other.node_id] = (other, index)
    if distance(other.node_id, PACK) < distance(PEERS[holder].node_id, PACK):
        survey.proven[index] = other
    return survey


def quiet(holder: int) -> Survey:
    return Survey(PACK, DESCRIPTOR, PEERS[holder], holder, DESCRIPTOR_BYTES)


# ---- keeper election -------------------------------------------------------


def test_the_closest_proven_holder_keeps_a_whole_set_and_audits_every_sibling() -> None:
    rounds = rounds_for(0)
    assert rounds.start(PACK, 10) == FullSurvey()
    assert rounds.settle(PACK, 0, surveyed(0, WHOLE), PEERS) is None
    step = rounds.start(PACK, 10)
    assert isinstance(step, AuditSiblings)
    assert sorted(i for _, i in step.targets) == list(range(1, 10))


def test_another_holder_watches_only_the_keeper() -> None:
    rounds = rounds_for(4)
    rounds.settle(PACK, 4, surveyed(4, WHOLE - {0}), PEERS)  # peer 0 is gone: peer 1 keeps
    assert rounds.start(PACK, 10) == AuditSiblings([(PEERS[1], 1)])


def test_only_the_keeper_repairs() -> None:
    found = WHOLE - {6, 7, 8, 9}  # under the threshold
    keeper, other = rounds_for(0), rounds_for(3)
    action = keeper.settle(PACK, 0, surveyed(0, found), PEERS)
    assert isinstance(action, Repair)
    assert action.plan.missing == (6, 7, 8, 9)
    assert action.plan.targets == tuple(PEERS[6:])  # the closest peers known to hold none
    assert other.settle(PACK, 3, surveyed(3, found), PEERS) is None


# ---- suspects and unseen shares ---------------------------------------------


def test_a_silent_holder_is_only_suspect_until_lost_after_surveys() -> None:
    rounds = rounds_for(0)
    for survey_number in range(1, CONFIG.lost_after):
        action = rounds.settle(PACK, 0, surveyed(0, WHOLE - {9}, {9: 9}), PEERS)
        assert action is None, survey_number  # above the threshold: give it time
    action = rounds.settle(PACK, 0, surveyed(0, WHOLE - {9}, {9: 9}), PEERS)
    assert isinstance(action, Repair) and action.plan.missing == (9,)
    assert PEERS[9] not in action.plan.targets  # lost: it gets no rebuilt share


def test_a_holder_that_proves_again_is_no_longer_counted_failing() -> None:
    rounds = rounds_for(0)
    rounds.settle(PACK, 0, surveyed(0, WHOLE - {9}, {9: 9}), PEERS)
    rounds.settle(PACK, 0, surveyed(0, WHOLE), PEERS)  # back after a reboot
    assert rounds.settle(PACK, 0, surveyed(0, WHOLE - {9}, {9: 9}), PEERS) is None


def test_an_index_nobody_claims_is_rebuilt_at_the_second_survey_missing_it() -> None:
    rounds = rounds_for(0)
    assert rounds.settle(PACK, 0, surveyed(0, WHOLE - {8}), PEERS) is None
    action = rounds.settle(PACK, 0, surveyed(0, WHOLE - {8}), PEERS)
    assert isinstance(action, Repair) and action.plan.missing == (8,)


def test_under_the_threshold_suspects_are_rebuilt_at_once() -> None:
    rounds = rounds_for(0)
    action = rounds.settle(PACK, 0, surveyed(0, set(range(6)), {6: 6, 7: None}), PEERS)
    assert isinstance(action, Repair) and action.plan.missing == (6, 7, 8, 9)


def test_a_silent_sibling_is_asked_again_at_the_next_survey() -> None:
    rounds = rounds_for(0)
    rounds.settle(PACK, 0, surveyed(0, WHOLE - {9}, {9: 9}), PEERS)
    known = rounds.known_siblings(PACK)
    assert known[PEERS[9].node_id] == (PEERS[9], 9)
    assert PEERS[0].node_id not in known


def test_a_peer_that_took_a_rebuilt_share_and_denies_it_counts_as_failed() -> None:
    rounds = rounds_for(0)
    rounds.on_repaired(PACK, {9: PEERS[10]}, 1234)
    assert (rounds.stats.repairs, rounds.stats.shares_rebuilt) == (1, 1)
    assert rounds.stats.repair_bytes == 1234
    survey = surveyed(0, WHOLE - {9})
    survey.answered.add(PEERS[10].node_id)  # answered, but holds nothing
    rounds.settle(PACK, 0, survey, PEERS)
    assert PEERS[10].node_id in survey.failed


def test_look_wider_only_under_the_threshold_with_unclaimed_indices() -> None:
    rounds = rounds_for(0)
    assert rounds.look_wider(surveyed(0, set(range(5))))
    assert not rounds.look_wider(surveyed(0, WHOLE - {9}))
    claimed = surveyed(0, set(range(5)), {i: i for i in range(5, 10)})
    assert not rounds.look_wider(claimed)


def test_look_wider_before_an_index_unseen_too_long_is_rebuilt() -> None:
    rounds = rounds_for(0)
    rounds.settle(PACK, 0, surveyed(0, WHOLE - {9}), PEERS)  # unseen once: grace
    assert rounds.look_wider(surveyed(0, WHOLE - {9}))


# ---- skipping a watched set --------------------------------------------------


def establish(rounds: Rounds, clock: Clock, holder: int, proven: frozenset[int]) -> None:
    """Full surveys by `holder` in which `proven` peers prove their index, as many and
    as spaced as establishing takes (`proof_rounds`, over `proof_span` intervals)."""
    for _ in range(CONFIG.proof_rounds):
        rounds.settle(PACK, holder, surveyed(holder, proven), PEERS)
        clock.now += CONFIG.audit_interval / 2


def test_a_set_an_established_closer_holder_audited_lately_is_skipped() -> None:
    clock = Clock()
    rounds = rounds_for(5, clock=clock)
    establish(rounds, clock, 5, WHOLE)
    rounds.forget(PACK)  # a fresh start, e.g. the share was stored again
    establish(rounds, clock, 5, WHOLE)
    rounds._views.clear()
    rounds.audit_log.note(PACK, PEERS[2].node_id, PEERS[2])
    assert rounds.start(PACK, 10) == Skip()
    assert rounds.stats.keeper_heard == 1


def test_an_auditor_we_never_established_does_not_silence_our_round() -> None:
    clock = Clock()
    rounds = rounds_for(5, clock=clock)
    rounds.audit_log.note(PACK, PEERS[2].node_id, PEERS[2])
    # Was Skip once (any closer auditor counted), then a full survey: now it is vetted.
    step = rounds.start(PACK, 10)
    assert step == VetAuditor(PEERS[2].node_id, PEERS[2])
    assert rounds.stats.keeper_heard == 0
    rounds.on_vetted(PACK, step, 2)
    assert rounds.start(PACK, 10) == AuditSiblings([(PEERS[2], 2)])  # watched, not trusted


def test_a_first_look_whose_auditor_fails_its_vetting_surveys_in_full() -> None:
    rounds = rounds_for(5)
    rounds.audit_log.note(PACK, PEERS[2].node_id, PEERS[2])
    assert isinstance(rounds.start(PACK, 10), VetAuditor)
    # The maintainer surveys in full the same round; what that finds replaces the view.
    rounds.settle(PACK, 5, surveyed(5, WHOLE - {2}, {2: None}), PEERS)
    assert rounds.start(PACK, 10) == AuditSiblings([(PEERS[0], 0)])


def test_a_keeper_we_passed_over_is_neither_vetted_nor_trusted_again() -> None:
    clock = Clock()
    rounds = rounds_for(5, clock=clock)
    establish(rounds, clock, 5, WHOLE)
    for _ in range(CONFIG.lost_after):
        rounds.keepers.idle(PACK, PEERS[0].node_id)
    rounds._views[PACK].targets = []  # as a first look leaves it
    rounds.audit_log.note(PACK, PEERS[0].node_id, PEERS[0])
    assert rounds.start(PACK, 10) == FullSurvey()  # was VetAuditor: it would watch it again
    rounds._views.clear()
    assert rounds.start(PACK, 10) == FullSurvey()


def test_a_holder_watches_an_auditor_nearer_than_its_keeper_once_vetted() -> None:
    rounds = rounds_for(5)
    # Peer 0 was silent at our survey: peer 1 keeps the set in our view.
    rounds.settle(PACK, 5, surveyed(5, WHOLE - {0}, {0: 0}), PEERS)
    assert rounds.start(PACK, 10) == AuditSiblings([(PEERS[1], 1)])
    rounds.audit_log.note(PACK, PEERS[3].node_id, PEERS[3])  # farther than the keeper
    assert rounds.start(PACK, 10) == AuditSiblings([(PEERS[1], 1)])
    rounds.audit_log.note(PACK, PEERS[0].node_id, PEERS[0])  # back, and auditing us
    step = rounds.start(PACK, 10)
    assert step == VetAuditor(PEERS[0].node_id, PEERS[0])  # was: audit peer 1 each round
    rounds.on_vetted(PACK, step, 0)
    assert rounds.start(PACK, 10) == AuditSiblings([(PEERS[0], 0)])


def test_a_nearer_auditor_we_have_not_vetted_does_not_replace_the_keeper() -> None:
    # Peer 0 failed an audit of ours (its vetting restarted), and audits us each round:
    # vetting it would fail and cost a full survey every round.
    rounds = rounds_for(5, vetted={c.node_id for c in PEERS} - {PEERS[0].node_id})
    rounds.settle(PACK, 5, surveyed(5, WHOLE - {0}, {0: 0}), PEERS)
    rounds.audit_log.note(PACK, PEERS[0].node_id, PEERS[0])
    assert rounds.start(PACK, 10) == AuditSiblings([(PEERS[1], 1)])


def test_a_closer_auditor_proven_once_is_watched_but_not_yet_trusted() -> None:
    clock = Clock()
    rounds = rounds_for(5, clock=clock)
    establish(rounds, clock, 5, WHOLE)
    rounds._views[PACK].targets = []  # as a first look leaves it
    rounds.audit_log.note(PACK, PEERS[9].node_id, PEERS[9])  # farther: no keeper of ours
    rounds.audit_log.note(PACK, PEERS[3].node_id, PEERS[3])
    rounds.proofs.flunked(PACK, PEERS[3].node_id)  # its history is gone
    rounds._views[PACK].keeper = PEERS[3].node_id
    step = rounds.start(PACK, 10)
    assert step == VetAuditor(PEERS[3].node_id, PEERS[3])
    rounds.on_vetted(PACK, step, 3)
    assert rounds.start(PACK, 10) == AuditSiblings([(PEERS[3], 3)])  # audited, not trusted


def test_an_auditor_farther_than_us_or_heard_too_long_ago_does_not_count() -> None:
    clock = Clock()
    rounds = rounds_for(5, clock=clock)
    rounds.audit_log.note(PACK, PEERS[8].node_id, PEERS[8])
    assert rounds.start(PACK, 10) == Skip()  # a set never surveyed waits once (first_waits)
    assert rounds.start(PACK, 10) == FullSurvey()
    rounds.audit_log.note(PACK, PEERS[2].node_id, PEERS[2])
    clock.now += 2 * CONFIG.audit_interval + 1
    assert rounds.start(PACK, 10) == FullSurvey()
    assert rounds.stats.keeper_heard == 0


def test_a_holder_skips_while_its_established_keeper_audits_it() -> None:
    clock = Clock()
    rounds = rounds_for(4, clock=clock)
    rounds.settle(PACK, 4, surveyed(4, WHOLE), PEERS)
    rounds.audit_log.note(PACK, PEERS[0].node_id)
    assert rounds.start(PACK, 10) == AuditSiblings([(PEERS[0], 0)])  # proven once only
    establish(rounds, clock, 4, WHOLE)
    rounds.audit_log.note(PACK, PEERS[0].node_id)
    assert rounds.start(PACK, 10) == Skip()
    clock.now += 3 * CONFIG.audit_interval  # the keeper went quiet: audit it ourselves
    assert rounds.start(PACK, 10) == AuditSiblings([(PEERS[0], 0)])


def test_a_closer_newcomer_in_the_routing_table_brings_the_survey_back() -> None:
    table = PEERS[:10]
    rounds = rounds_for(9, table=table)
    rounds.settle(PACK, 9, surveyed(9, WHOLE), PEERS)
    assert rounds.start(PACK, 10) == AuditSiblings([(PEERS[0], 0)])
    table.append(newcomer_closer_than(PEERS[9]))  # now n peers are closer than us
    assert rounds.start(PACK, 10) == FullSurvey()


def newcomer_closer_than(holder: Contact) -> Contact:
    ids = random.Random(9)
    mine = distance(holder.node_id, PACK)
    while True:
        candidate = Contact(ids.randbytes(20), "10.0.0.2", 4000)
        if distance(candidate.node_id, PACK) < mine:
            return candidate


# ---- quiet rounds and their end -----------------------------------------------


def _quiet_round(rounds: Rounds, failing: set[int], lying: bool = False) -> bool:
    """Peer 0, keeper of a whole set, audits its siblings; those holding `failing`
    indices do not prove them (with a bad proof when `lying`). What `on_audits` said."""
    step = rounds.start(PACK, 10)
    assert isinstance(step, AuditSiblings)
    audits = quiet(0)
    for contact, i in step.targets:
        audits.claims[contact.node_id] = (contact, i)
        if i in failing:
            audits.failed.add(contact.node_id)
            if lying:
                audits.lied.add(contact.node_id)
        else:
            audits.proven[i] = contact
    return rounds.on_audits(PACK, audits, len(step.targets))


def test_a_failed_quiet_audit_counts_and_the_next_round_surveys_and_repairs() -> None:
    rounds = rounds_for(0)
    rounds.settle(PACK, 0, surveyed(0, WHOLE), PEERS)
    assert _quiet_round(rounds, {6})  # nothing more this round: the set is above the threshold
    assert rounds.failures.counts == {PEERS[6].node_id: 1}
    assert rounds.start(PACK, 10) == FullSurvey()
    # Still silent at that survey: its second failure running, so it is rebuilt now,
    # as when the quiet round's failure brought a survey at once and this was the second.
    action = rounds.settle(PACK, 0, surveyed(0, WHOLE - {6}, {6: 6}), PEERS)
    assert isinstance(action, Repair) and action.plan.missing == (6,)
    assert PEERS[6] not in action.plan.targets


def test_a_quiet_round_that_leaves_the_set_under_the_threshold_surveys_at_once() -> None:
    rounds = rounds_for(0)
    rounds.settle(PACK, 0, surveyed(0, WHOLE), PEERS)
    assert not _quiet_round(rounds, {3, 5, 7, 9})  # six proven: under the threshold of 7
    assert rounds.start(PACK, 10) == FullSurvey()


def test_a_sibling_lying_in_a_quiet_round_brings_the_survey_at_once() -> None:
    rounds = rounds_for(0)
    rounds.settle(PACK, 0, surveyed(0, WHOLE), PEERS)
    assert not _quiet_round(rounds, {6}, lying=True)


def test_quiet_rounds_run_out_and_the_full_survey_returns() -> None:
    rounds = rounds_for(0)
    rounds.settle(PACK, 0, surveyed(0, WHOLE), PEERS)
    for _ in range(CONFIG.quiet_rounds):
        step = rounds.start(PACK, 10)
        assert isinstance(step, AuditSiblings)
        assert rounds.on_audits(PACK, surveyed(0, WHOLE), len(step.targets))
    assert rounds.start(PACK, 10) == FullSurvey()


def test_a_keeper_of_a_set_with_failures_surveys_in_full_every_round() -> None:
    rounds = rounds_for(0)
    rounds.settle(PACK, 0, surveyed(0, WHOLE - {9}, {9: 9}), PEERS)
    assert rounds.start(PACK, 10) == FullSurvey()


# ---- rebalancing ---------------------------------------------------------------


def test_a_holder_outside_the_n_closest_hands_its_share_to_a_closer_free_peer() -> None:
    rounds = rounds_for(12)
    survey = surveyed(12, WHOLE, index=3)  # we hold share 3; peer 3, far closer, holds none
    assert rounds.settle(PACK, 3, survey, PEERS) == HandOver([PEERS[3]])
    rounds.on_handed_over(PACK)
    assert rounds.stats.handed_off == 1


def test_a_second_copy_goes_once_closer_holders_established_the_whole_set() -> None:
    clock = Clock()
    rounds = rounds_for(12, clock=clock)
    # Peer 4, closer, holds index 4 as we do (a repair that could not see us).
    assert rounds.settle(PACK, 4, twin(12, 4, PEERS[4]), PEERS) is None
    step = rounds.start(PACK, 10)  # its proofs are awaited, round by round
    assert isinstance(step, AwaitProofs) and (PEERS[4], 4) in step.targets
    for _ in range(CONFIG.proof_rounds - 2):
        clock.now += CONFIG.audit_interval / 2
        assert rounds.settle(PACK, 4, twin(12, 4, PEERS[4]), PEERS) is None
    clock.now += CONFIG.audit_interval / 2
    assert rounds.settle(PACK, 4, twin(12, 4, PEERS[4]), PEERS) == DropCopy()
    rounds.on_dropped(PACK)
    assert rounds.stats.duplicates_dropped == 1
    assert rounds.known_siblings(PACK) == {}


def test_forgetting_a_pack_clears_what_was_known_of_it() -> None:
    rounds = rounds_for(0)
    rounds.audit_log.note(PACK, PEERS[1].node_id)
    rounds.settle(PACK, 0, surveyed(0, WHOLE - {9}, {9: 9}), PEERS)
    rounds.on_expired(PACK)
    assert rounds.stats.expired == 1
    assert rounds.known_siblings(PACK) == {}
    assert rounds.audit_log.auditors(PACK, 1e9) == []
    assert rounds.start(PACK, 10) == FullSurvey()


# ---- randomness ------------------------------------------------------------------


def test_round_jitter_comes_from_the_seed() -> None:
    def pauses(seed: int) -> list[float]:
        rounds = rounds_for(0, seed=seed)
        return [rounds.pause() for _ in range(20)]

    first, again, other = pauses(3), pauses(3), pauses(4)
    assert first == again
    assert first != other
    interval = CONFIG.audit_interval
    assert all(0.5 * interval <= p < 1.5 * interval for p in first)
