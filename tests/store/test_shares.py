"""The ShareStore contract, run against both implementations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.errors import P2PBackupError
from p2pbackup.store import (
    FileShareStore,
    MemoryShareStore,
    OwnerQuotaFull,
    ShareKey,
    ShareRejected,
    ShareStore,
    StoreFull,
)
from tests.store.helpers import OWNER_A, OWNER_B, pack

CAPACITY = 10_000


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ShareStore]:
    made: ShareStore
    if request.param == "memory":
        made = MemoryShareStore(CAPACITY)
    else:
        made = FileShareStore(tmp_path / "store", CAPACITY)
    yield made
    made.close()


def put(
    store: ShareStore,
    n: int,
    index: int = 0,
    data: bytes = b"x" * 100,
    owner: bytes = OWNER_A,
    lease: int = 1000,
    now: int = 10,
    descriptor: bytes = b"desc",
) -> None:
    store.put(pack(n), index, data, descriptor, owner, lease, now)


def test_round_trip(store: ShareStore) -> None:
    store.put(pack(1), 3, b"share bytes", b"signed descriptor", OWNER_A, 500, 42)
    got = store.get(pack(1), 3, OWNER_A)
    assert got is not None
    assert (got.pack_id, got.index, got.data) == (pack(1), 3, b"share bytes")
    assert (got.descriptor, got.owner, got.lease_expiry, got.stored_at) == (
        b"signed descriptor",
        OWNER_A,
        500,
        42,
    )
    assert store.has(pack(1), 3, OWNER_A)
    assert not store.has(pack(1), 3, OWNER_B)
    assert store.get(pack(1), 3, OWNER_B) is None
    assert store.used_bytes == len(b"share bytes")
    assert list(store.list_shares()) == [(pack(1), 3, 11, 500, OWNER_A)]


def test_missing_share(store: ShareStore) -> None:
    assert store.get(pack(9), 0, OWNER_A) is None
    assert not store.has(pack(9), 0, OWNER_A)
    assert not store.delete(pack(9), 0, OWNER_A)


def test_delete_frees_space(store: ShareStore) -> None:
    put(store, 1, data=b"y" * 400)
    put(store, 2, data=b"y" * 100)
    assert not store.delete(pack(1), 0, OWNER_B)  # not that owner's share
    assert store.delete(pack(1), 0, OWNER_A)
    assert not store.has(pack(1), 0, OWNER_A)
    assert store.get(pack(1), 0, OWNER_A) is None
    assert store.used_bytes == 100
    assert not store.delete(pack(1), 0, OWNER_A)


def test_full_store_refuses_with_reason_and_keeps_nothing(store: ShareStore) -> None:
    put(store, 1, data=b"a" * 9_000)
    before = list(store.list_shares())
    with pytest.raises(StoreFull) as refused:
        put(store, 2, data=b"b" * 1_001)
    assert isinstance(refused.value, P2PBackupError)
    reason = str(refused.value)
    assert "1000 bytes free" in reason
    assert "1001 bytes needed" in reason
    assert not store.has(pack(2), 0, OWNER_A)
    assert store.get(pack(2), 0, OWNER_A) is None
    assert store.used_bytes == 9_000
    assert list(store.list_shares()) == before
    put(store, 2, data=b"b" * 1_000)  # an exact fit is accepted
    assert store.used_bytes == store.capacity == CAPACITY


def test_identical_reput_is_free_and_only_extends_lease(store: ShareStore) -> None:
    put(store, 1, data=b"a" * CAPACITY, lease=1000, now=5, descriptor=b"v1")
    put(store, 1, data=b"a" * CAPACITY, lease=2000, now=6, descriptor=b"v2")
    assert store.used_bytes == CAPACITY
    got = store.get(pack(1), 0, OWNER_A)
    assert got is not None
    assert (got.lease_expiry, got.descriptor, got.stored_at) == (2000, b"v2", 5)
    put(store, 1, data=b"a" * CAPACITY, lease=1500, now=7, descriptor=b"old")
    got = store.get(pack(1), 0, OWNER_A)
    assert got is not None
    assert (got.lease_expiry, got.descriptor) == (2000, b"v2")
    assert len(list(store.list_shares())) == 1


def test_replacing_data_accounts_the_difference(store: ShareStore) -> None:
    put(store, 1, data=b"a" * 6_000)
    put(store, 2, data=b"b" * 3_000)
    put(store, 1, data=b"c" * 7_000)
    assert store.used_bytes == 10_000
    with pytest.raises(StoreFull):
        put(store, 1, data=b"d" * 7_001)
    got = store.get(pack(1), 0, OWNER_A)
    assert got is not None and got.data == b"c" * 7_000
    assert store.used_bytes == 10_000


def test_two_owners_shares_under_one_pack_id_coexist(store: ShareStore) -> None:
    """A squatter's share under another owner's pack id and index is a share of its own:
    it neither overwrites nor blocks the real one, and each is read, renewed, expired
    and deleted apart."""
    put(store, 1, data=b"junk", owner=OWNER_B, lease=50)
    put(store, 1, data=b"mine", owner=OWNER_A, lease=100)
    put(store, 1, data=b"evil", owner=OWNER_B, lease=50)  # replaces only its own
    mine, junk = store.get(pack(1), 0, OWNER_A), store.get(pack(1), 0, OWNER_B)
    assert mine is not None and (mine.data, mine.owner) == (b"mine", OWNER_A)
    assert junk is not None and (junk.data, junk.owner) == (b"evil", OWNER_B)
    assert store.indices(pack(1), OWNER_A) == [0] == store.indices(pack(1), OWNER_B)
    assert store.indices(pack(1)) == [0, 0]
    assert (store.owner_used(OWNER_A), store.owner_used(OWNER_B)) == (4, 4)
    assert store.renew(pack(1), OWNER_B, 60) == 1
    assert store.expired(60) == [ShareKey(pack(1), 0, OWNER_B)]
    assert store.delete(pack(1), 0, OWNER_B)
    assert store.get(pack(1), 0, OWNER_A) == mine
    assert store.stats()["owners"] == 1


def test_renew_only_touches_the_owners_shares(store: ShareStore) -> None:
    put(store, 1, index=0, owner=OWNER_A, lease=100)
    put(store, 1, index=1, owner=OWNER_A, lease=100)
    put(store, 2, index=0, owner=OWNER_B, lease=100)
    assert store.renew(pack(1), OWNER_B, 999) == 0
    assert store.renew(pack(2), OWNER_A, 999) == 0
    assert store.renew(pack(1), OWNER_A, 500) == 2
    leases = {(p, i): e for p, i, _, e, _ in store.list_shares()}
    assert leases == {(pack(1), 0): 500, (pack(1), 1): 500, (pack(2), 0): 100}
    assert store.renew(pack(3), OWNER_A, 500) == 0


def test_expired(store: ShareStore) -> None:
    put(store, 1, lease=300)
    put(store, 2, lease=100)
    put(store, 3, lease=200)
    assert store.expired(99) == []
    assert store.expired(100) == [(pack(2), 0, OWNER_A)]
    assert store.expired(250) == [(pack(2), 0, OWNER_A), (pack(3), 0, OWNER_A)]
    store.renew(pack(2), OWNER_A, 1000)
    assert store.expired(250) == [(pack(3), 0, OWNER_A)]


def test_stats(store: ShareStore) -> None:
    put(store, 1, index=0, data=b"a" * 10, owner=OWNER_A)
    put(store, 1, index=1, data=b"a" * 20, owner=OWNER_A)
    put(store, 2, index=0, data=b"a" * 30, owner=OWNER_B)
    stats = store.stats()
    assert stats["shares"] == 3
    assert stats["packs"] == 2
    assert stats["owners"] == 2
    assert stats["used_bytes"] == 60
    assert stats["capacity"] == CAPACITY
    assert stats["free_bytes"] == CAPACITY - 60
    assert stats["owner_quota"] == CAPACITY  # no quota given: the capacity bounds each owner


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_an_owner_past_its_quota_is_refused_as_full(kind: str, tmp_path: Path) -> None:
    """One owner cannot take more than its quota, whatever space is free; the refusal is
    a `StoreFull`, so a placement moves on to the next peer, and other owners still fit."""
    store: ShareStore = (
        MemoryShareStore(CAPACITY, owner_quota=3_000)
        if kind == "memory"
        else FileShareStore(tmp_path, CAPACITY, owner_quota=3_000)
    )
    put(store, 1, data=b"a" * 2_000, owner=OWNER_B)
    with pytest.raises(OwnerQuotaFull, match="owner quota full") as refused:
        put(store, 2, data=b"a" * 1_001, owner=OWNER_B)
    assert isinstance(refused.value, StoreFull)
    assert "1000 bytes free" in str(refused.value)
    put(store, 2, data=b"a" * 1_000, owner=OWNER_B)  # an exact fit
    put(store, 1, data=b"b" * 500, owner=OWNER_B)  # a replacement counts what it frees
    put(store, 3, data=b"a" * 3_000, owner=OWNER_A)
    assert (store.owner_used(OWNER_A), store.owner_used(OWNER_B)) == (3_000, 1_500)
    assert store.stats()["owner_quota"] == 3_000
    store.close()
    if kind == "file":  # the per-owner count is rebuilt from the index on open
        with FileShareStore(tmp_path, CAPACITY, owner_quota=3_000) as reopened:
            assert reopened.owner_used(OWNER_B) == 1_500
            with pytest.raises(OwnerQuotaFull):
                put(reopened, 4, data=b"c" * 1_501, owner=OWNER_B)


@pytest.mark.parametrize(
    ("pack_id", "index", "owner"),
    [
        (b"short", 0, OWNER_A),
        (b"x" * 21, 0, OWNER_A),
        (b"x" * 20, 255, OWNER_A),
        (b"x" * 20, -1, OWNER_A),
        (b"x" * 20, True, OWNER_A),
        (b"x" * 20, 0, b"o" * 31),
    ],
)
def test_malformed_shares_are_rejected(
    store: ShareStore, pack_id: bytes, index: int, owner: bytes
) -> None:
    with pytest.raises(ShareRejected):
        store.put(pack_id, index, b"data", b"d", owner, 1, 0)
    assert store.used_bytes == 0
    assert list(store.list_shares()) == []


def test_empty_capacity_refuses_everything(tmp_path: Path) -> None:
    for store in (MemoryShareStore(0), FileShareStore(tmp_path, 0)):
        with pytest.raises(StoreFull, match="0 bytes free"):
            put(store, 1, data=b"z")
        store.close()
