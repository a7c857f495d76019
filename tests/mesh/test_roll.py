"""The roll: a set union of founder-signed items, whatever order they come in."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.crypto.identity import Identity
from p2pbackup.mesh.certs import Certificate, Revocation
from p2pbackup.mesh.roll import Roll
from tests.mesh.support import NOW

FOUNDER = Identity.from_seed(bytes(range(32)))
MEMBERS = [Identity.from_seed(bytes([i]) * 32).public_key for i in range(1, 7)]
ITEMS = [Certificate.issue(FOUNDER, m, f"m{i}", NOW + i).to_bytes() for i, m in enumerate(MEMBERS)]
ITEMS += [Revocation.issue(FOUNDER, m, NOW + 100).to_bytes() for m in MEMBERS[:2]]


@given(st.lists(st.sampled_from(ITEMS)), st.lists(st.sampled_from(ITEMS)), st.randoms())
def test_merging_is_a_union_in_any_order(
    a: list[bytes], b: list[bytes], rng: random.Random
) -> None:
    left, right, both = Roll(FOUNDER.public_key), Roll(FOUNDER.public_key), Roll(FOUNDER.public_key)
    left.merge(a)
    right.merge(b)
    left.merge(right.items())
    union = list({*a, *b})
    rng.shuffle(union)
    both.merge(union)
    assert left.items() == both.items() and left.digest() == both.digest()
    assert len(left) == len(set(a) | set(b))


def test_revoked_members_are_off_the_roll_for_good() -> None:
    roll = Roll(FOUNDER.public_key)
    roll.merge(ITEMS)
    assert [roll.is_member(m) for m in MEMBERS] == [False, False, True, True, True, True]
    assert roll.expelled(MEMBERS[0]) and not roll.expelled(MEMBERS[2])


def test_items_of_another_mesh_or_forged_are_skipped() -> None:
    stranger = Identity.generate()
    roll = Roll(FOUNDER.public_key)
    other_mesh = Certificate.issue(stranger, MEMBERS[3], "x", NOW).to_bytes()
    forged = Certificate(FOUNDER.public_key, MEMBERS[4], "x", NOW, bytes(64)).to_bytes()
    assert roll.merge([other_mesh, forged, b"\xff" * 40]) == []
    assert len(roll) == 0 and not roll.is_member(MEMBERS[3])
