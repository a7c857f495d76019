"""The file share store against a model of its contract, through any sequence of puts,
reads, deletes, lease expiry and power cuts that hypothesis can find.

The model is a dict of what the store acknowledged, kept by the contract's rules
written out again here, independently of the store's own code: shares are keyed by
pack id, index and owner, so two owners' shares under one pack id and index live
side by side; a put that raised stored nothing, a re-put of held bytes costs
nothing and only lengthens the lease, no owner holds more than its quota, and a
share leaves only by `delete` or by collection once its lease has run out.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from p2pbackup.store import FileShareStore, OwnerQuotaFull, ShareKey, StoreFull
from tests.store.helpers import OWNER_A, OWNER_B, pack

CAPACITY = 600  # two of the largest shares, or four of the next: exact fits are common
QUOTA = 450  # one owner alone cannot fill the store: the quota and the capacity both bind

PACKS = 3  # few packs, so shares meet under one key and one pack often
OWNERS = (OWNER_A, OWNER_B)
keys = st.builds(
    ShareKey, st.integers(0, PACKS - 1).map(pack), st.integers(0, 2), st.sampled_from(OWNERS)
)
# Few distinct contents, so re-puts of the same bytes and replacements both happen,
# and sizes that make the store fill up within a few puts.
contents = st.builds(
    lambda fill, size: bytes([fill]) * size, st.integers(0, 1), st.sampled_from([1, 64, 150, 300])
)
owners = st.sampled_from(OWNERS)
descriptors = st.sampled_from([b"desc-1", b"desc-2"])


@dataclass(frozen=True)
class Held:
    """What the store acknowledged holding under one key."""

    data: bytes
    descriptor: bytes
    lease_expiry: int
    stored_at: int


class FileStoreMachine(RuleBasedStateMachine):
    """Drives one store directory; the clock is a counter the rules advance."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="store-machine-"))
        self.store = FileShareStore(self.root, CAPACITY, QUOTA)
        self.model: dict[ShareKey, Held] = {}
        self.now = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def used(self, owner: bytes | None = None) -> int:
        return sum(len(h.data) for k, h in self.model.items() if owner in (None, k.owner))

    @initialize(shares=st.lists(st.tuples(st.integers(0, 2), contents), max_size=3))
    def start_with_one_owners_pack(self, shares: list[tuple[int, bytes]]) -> None:
        """Begin as a holder often is: several shares of one pack from one owner."""
        for index, data in shares:
            self.check_put(ShareKey(pack(0), index, OWNER_A), data, b"desc-1", 20)

    @rule(key=keys, data=contents, descriptor=descriptors, lease=st.integers(1, 40))
    def put(self, key: ShareKey, data: bytes, descriptor: bytes, lease: int) -> None:
        self.check_put(key, data, descriptor, lease)

    @precondition(lambda self: self.model)
    @rule(pick=st.data(), data=contents, descriptor=descriptors, lease=st.integers(1, 40))
    def squat_a_held_key(
        self, pick: st.DataObject, data: bytes, descriptor: bytes, lease: int
    ) -> None:
        """The other owner puts under a pack id and index already held: a share of its own
        beside the held one, which it neither replaces nor blocks."""
        held = pick.draw(st.sampled_from(sorted(self.model)))
        other = OWNER_B if held.owner == OWNER_A else OWNER_A
        before = self.model[held]
        self.check_put(held._replace(owner=other), data, descriptor, lease)
        assert self.model[held] == before

    @precondition(lambda self: self.model)
    @rule(
        pick=st.data(),
        index=st.integers(0, 2),
        data=contents,
        descriptor=descriptors,
        lease=st.integers(1, 40),
    )
    def put_beside_a_held_share(
        self, pick: st.DataObject, index: int, data: bytes, descriptor: bytes, lease: int
    ) -> None:
        """Another share of a held pack for the same owner, as an owner spreading a pack
        over few peers sends: a holder then keeps several shares of one pack."""
        held = pick.draw(st.sampled_from(sorted(self.model)))
        self.check_put(held._replace(idx=index), data, descriptor, lease)

    def check_put(self, key: ShareKey, data: bytes, descriptor: bytes, lease: int) -> None:
        offered = Held(data, descriptor, self.now + lease, self.now)
        refusal, after = self.expect_put(key, self.model.get(key), offered)
        pack_id, index, owner = key
        try:
            self.store.put(pack_id, index, data, descriptor, owner, offered.lease_expiry, self.now)
        except StoreFull as refused:
            assert type(refused) is refusal, f"refused with {refused!r}, expected {refusal}"
        else:
            assert refusal is None, f"put accepted, expected {refusal.__name__}"
        if after is not None:
            self.model[key] = after

    def expect_put(
        self, key: ShareKey, old: Held | None, offered: Held
    ) -> tuple[type[Exception] | None, Held | None]:
        """The contract's outcome of a put: the refusal due, and what is held after it."""
        if old is not None and old.data == offered.data:
            if offered.lease_expiry < old.lease_expiry:
                return None, old
            return None, dataclasses.replace(offered, stored_at=old.stored_at)
        freed = len(old.data) if old is not None else 0
        if self.used() - freed + len(offered.data) > CAPACITY:
            return StoreFull, old
        if self.used(key.owner) - freed + len(offered.data) > QUOTA:
            return OwnerQuotaFull, old
        return None, offered

    @rule(key=keys)
    def get(self, key: ShareKey) -> None:
        got = self.store.get(*key)
        held = self.model.get(key)
        if held is None:
            assert got is None
            return
        assert got is not None, "an acknowledged share was lost"
        assert (got.pack_id, got.index, got.owner) == key
        assert Held(got.data, got.descriptor, got.lease_expiry, got.stored_at) == held

    @rule(key=keys)
    def delete(self, key: ShareKey) -> None:
        assert self.store.delete(*key) == (key in self.model)
        self.model.pop(key, None)

    @rule(pack_no=st.integers(0, PACKS - 1), owner=owners, lease=st.integers(1, 40))
    def renew(self, pack_no: int, owner: bytes, lease: int) -> None:
        self.check_renew(pack(pack_no), owner, lease)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), lease=st.integers(1, 40))
    def renew_a_held_pack(self, data: st.DataObject, lease: int) -> None:
        """Renewal aimed at what is held, so one often covers several shares of a pack."""
        key = data.draw(st.sampled_from(sorted(self.model)))
        self.check_renew(key.pack_id, key.owner, lease)

    def check_renew(self, pack_id: bytes, owner: bytes, lease: int) -> None:
        lease_expiry = self.now + lease
        mine = [k for k in self.model if k.pack_id == pack_id and k.owner == owner]
        event(f"renew covers {len(mine)} shares")
        assert self.store.renew(pack_id, owner, lease_expiry) == len(mine)
        for key in mine:
            self.model[key] = dataclasses.replace(self.model[key], lease_expiry=lease_expiry)

    @rule(advance=st.integers(0, 30), to_next_lease=st.booleans())
    def expire(self, advance: int, to_next_lease: bool) -> None:
        """The clock passes some leases (or lands exactly on the soonest one, where
        `lease_expiry <= now` first holds); collection deletes exactly the shares they
        covered."""
        if to_next_lease and self.model:
            self.now = max(self.now, min(h.lease_expiry for h in self.model.values()))
        else:
            self.now += advance
        due = sorted(
            (k for k, h in self.model.items() if h.lease_expiry <= self.now),
            key=lambda k: (self.model[k].lease_expiry, k),
        )
        assert self.store.expired(self.now) == due
        for key in due:
            assert self.store.delete(*key)
            del self.model[key]

    @rule(debris=st.booleans())
    def crash_and_reopen(self, debris: bool) -> None:
        """Power cut: what a put cut short leaves (a temp file, a file whose row never
        committed) is cleaned on open, and every acknowledged share is back."""
        self.store.close()
        left = 0
        free = [
            ShareKey(pack(n), i, owner)
            for n in range(PACKS)
            for i in range(3)
            for owner in OWNERS
            if ShareKey(pack(n), i, owner) not in self.model
        ]
        if debris and free:
            orphan = self.store.path_of(*free[0])
            orphan.parent.mkdir(parents=True, exist_ok=True)
            orphan.write_bytes(b"never acknowledged")
            (orphan.parent / f".{orphan.name}.cut.tmp").write_bytes(b"never acknow")
            left = 1
        self.store = FileShareStore(self.root, CAPACITY, QUOTA)
        assert self.store.recovered == {
            "temps_removed": left,
            "rows_dropped": 0,
            "orphans_deleted": left,
            "reindexed": 0,
        }

    @invariant()
    def nothing_acknowledged_is_lost(self) -> None:
        """Held are exactly the shares acknowledged and neither deleted nor collected."""
        expected = [
            (k.pack_id, k.idx, len(h.data), h.lease_expiry, k.owner)
            for k, h in sorted(self.model.items())
        ]
        assert [tuple(info) for info in self.store.list_shares()] == expected

    @invariant()
    def bytes_used_is_the_sum_of_held_shares(self) -> None:
        assert self.store.used_bytes == self.used()
        assert self.store.stats()["used_bytes"] == self.used()
        for owner in OWNERS:
            assert self.store.owner_used(owner) == self.used(owner) <= QUOTA

    @invariant()
    def never_over_capacity(self) -> None:
        assert self.store.used_bytes <= CAPACITY
        assert self.store.stats()["free_bytes"] == CAPACITY - self.used()


FileStoreMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
TestFileStoreMachine = FileStoreMachine.TestCase
