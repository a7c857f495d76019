"""A holder's survey of its share set: audits and who repairs what."""

from __future__ import annotations

import os
import random

from p2pbackup.base.ids import distance
from p2pbackup.codec.descriptor import describe_pack
from p2pbackup.codec.erasure import block_proof, encode_pack, share_block
from p2pbackup.codec.packs import pack_id_of
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.maintenance.survey import Survey
from p2pbackup.net.contact import Contact
from p2pbackup.shares.upkeep_messages import AuditProof

OWNER = OwnerKeys.from_master(bytes(32)).identity
RNG = random.Random(3)


def setup(size: int = 400_000) -> tuple[bytes, list[bytes], bytes, list[Contact]]:
    data = os.urandom(size)
    pack_id = pack_id_of(data)
    shares = encode_pack(data, 3, 10)
    descriptor = describe_pack(OWNER, pack_id, shares, 3, len(data), 2**40)
    peers = sorted(
        (Contact(RNG.randbytes(20), "127.0.0.1", 4000 + i) for i in range(14)),
        key=lambda c: distance(c.node_id, pack_id),
    )
    return pack_id, shares, descriptor.to_bytes(), peers


def answer(share: bytes, block: int) -> AuditProof:
    return AuditProof(share_block(share, block), tuple(block_proof(share, block)))


def survey_from(holder: int, pack_id: bytes, descriptor: bytes, peers: list[Contact]) -> Survey:
    from p2pbackup.codec.descriptor import ShareDescriptor

    return Survey(pack_id, ShareDescriptor.from_bytes(descriptor), peers[holder], holder)


def test_honest_siblings_are_proven_and_liars_are_not() -> None:
    pack_id, shares, descriptor, peers = setup()
    survey = survey_from(0, pack_id, descriptor, peers)
    for i in range(1, 10):
        assert survey.on_holding(peers[i], i, descriptor)
        audit = survey.challenge(peers[i], RNG)
        share = shares[i]
        if i == 4:  # keeps a share, but not the right one
            share = shares[5]
        if i == 6:  # kept the share but one bit rotted
            share = bytes([share[0] ^ 1]) + share[1:] if audit.block == 0 else share[:-1] + b"x"
        proof = answer(share, audit.block) if i != 8 else None
        survey.on_proof(peers[i], proof)
    assert sorted(survey.proven) == [0, 1, 2, 3, 5, 7, 9]
    assert survey.failed == {peers[4].node_id, peers[6].node_id, peers[8].node_id}


def test_a_forged_or_foreign_descriptor_is_not_audited() -> None:
    pack_id, _, descriptor, peers = setup()
    _, _, other_descriptor, _ = setup()
    survey = survey_from(0, pack_id, descriptor, peers)
    assert not survey.on_holding(peers[1], 1, other_descriptor)
    assert not survey.on_holding(peers[2], 2, os.urandom(100))
    assert not survey.on_holding(peers[3], 11, descriptor)
    assert survey.failed == {peers[1].node_id, peers[2].node_id, peers[3].node_id}


def _surveyed(holder: int, alive: set[int]) -> tuple[Survey, list[Contact], bytes]:
    pack_id, shares, descriptor, peers = setup()
    survey = survey_from(holder, pack_id, descriptor, peers)
    for i in range(10):
        if i == holder:
            continue
        if i in alive:
            survey.on_holding(peers[i], i, descriptor)
            audit = survey.challenge(peers[i], RNG)
            survey.on_proof(peers[i], answer(shares[i], audit.block))
        else:
            survey.on_silent(peers[i])
    return survey, peers, pack_id


def test_only_the_closest_proven_holder_repairs() -> None:
    alive = {1, 2, 3, 4, 5, 6}
    closest, peers, _ = _surveyed(1, alive)  # peer 0 is dead: peer 1 is the closest alive
    other, _, _ = _surveyed(3, alive)
    plan = closest.plan(peers, threshold=7, suspects=set())
    assert plan is not None and plan.missing == (0, 7, 8, 9)
    assert plan.targets == tuple(peers[10:14])  # the closest peers holding nothing, in order
    assert [i for i, _ in plan.sources] == sorted(alive)
    assert other.plan(peers, threshold=7, suspects=set()) is None


def test_suspects_are_given_time_unless_the_set_is_under_threshold() -> None:
    survey, peers, _ = _surveyed(0, set(range(10)) - {8, 9})
    suspects = {peers[9].node_id}
    survey.claims[peers[9].node_id] = (peers[9], 9)  # it claimed index 9 in an earlier round
    plan = survey.plan(peers, threshold=7, suspects=suspects)
    assert plan is not None and plan.missing == (8,)  # 8 is lost, 9 only suspect
    low, peers, _ = _surveyed(0, {1, 2, 3, 4, 5})
    low.claims[peers[9].node_id] = (peers[9], 9)
    plan = low.plan(peers, threshold=7, suspects={peers[9].node_id})
    assert plan is not None and plan.missing == (6, 7, 8, 9)


def test_nothing_to_do_for_a_whole_set_or_with_fewer_than_k() -> None:
    full, peers, _ = _surveyed(0, set(range(10)))
    assert full.plan(peers, threshold=7, suspects=set()) is None
    lost, peers, _ = _surveyed(0, {1})
    assert lost.plan(peers, threshold=7, suspects=set()) is None


def test_every_pass_is_kept_and_a_fresh_claim_not_proven_counts_as_a_lie() -> None:
    pack_id, shares, descriptor, peers = setup(40_000)
    survey = survey_from(0, pack_id, descriptor, peers)
    for i in (1, 2, 3):
        survey.on_holding(peers[i], i, descriptor, fresh=i != 3)
        audit = survey.challenge(peers[i], RNG)
        survey.on_proof(peers[i], answer(shares[i], audit.block) if i == 1 else None)
    survey.on_holding(peers[4], 1, descriptor)  # a second holder of index 1
    survey.on_proof(peers[4], answer(shares[1], survey.challenge(peers[4], RNG).block))
    assert survey.passed == {peers[1].node_id: (peers[1], 1), peers[4].node_id: (peers[4], 1)}
    assert survey.flunked == {peers[2].node_id, peers[3].node_id}
    # Peer 3's claim was remembered, not made just now: it may have let its copy go.
    assert survey.lied == {peers[2].node_id}
