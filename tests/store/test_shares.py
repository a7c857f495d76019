"""The ShareStore contract, run against both implementations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.errors import P2PBackupError
from p2pbackup.store import (
    FileShareStore,
    MemoryShareStore,
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
    got = store.get(pack(1), 3)
    assert got is not None
    assert (got.pack_id, got.index, got.data) == (pack(1), 3, b"share bytes")
    assert (got.descriptor, got.owner, got.lease_expiry, got.stored_at) == (
        b"signed descriptor",
        OWNER_A,
        500,
        42,
    )
    assert store.has(pack(1), 3)
    assert store.used_bytes == len(b"share bytes")
    assert list(store.list_shares()) == [(pack(1), 3, 11, 500)]


def test_missing_share(store: ShareStore) -> None:
    assert store.get(pack(9), 0) is None
    assert not store.has(pack(9), 0)
    assert not store.delete(pack(9), 0)


def test_delete_frees_space(store: ShareStore) -> None:
    put(store, 1, data=b"y" * 400)
    put(store, 2, data=b"y" * 100)
    assert store.delete(pack(1), 0)
    assert not store.has(pack(1), 0)
    assert store.get(pack(1), 0) is None
    assert store.used_bytes == 100
    assert not store.delete(pack(1), 0)


def test_full_store_refuses_with_reason_and_keeps_nothing(store: ShareStore) -> None:
    put(store, 1, data=b"a" * 9_000)
    before = list(store.list_shares())
    with pytest.raises(StoreFull) as refused:
        put(store, 2, data=b"b" * 1_001)
    assert isinstance(refused.value, P2PBackupError)
    reason = str(refused.value)
    assert "1000 bytes free" in reason
    assert "1001 bytes needed" in reason
    assert not store.has(pack(2), 0)
    assert store.get(pack(2), 0) is None
    assert store.used_bytes == 9_000
    assert list(store.list_shares()) == before
    put(store, 2, data=b"b" * 1_000)  # an exact fit is accepted
    assert store.used_bytes == store.capacity == CAPACITY


def test_identical_reput_is_free_and_only_extends_lease(store: ShareStore) -> None:
    put(store, 1, data=b"a" * CAPACITY, lease=1000, now=5, descriptor=b"v1")
    put(store, 1, data=b"a" * CAPACITY, lease=2000, now=6, descriptor=b"v2")
    assert store.used_bytes == CAPACITY
    got = store.get(pack(1), 0)
    assert got is not None
    assert (got.lease_expiry, got.descriptor, got.stored_at) == (2000, b"v2", 5)
    put(store, 1, data=b"a" * CAPACITY, lease=1500, now=7, descriptor=b"old")
    got = store.get(pack(1), 0)
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
    got = store.get(pack(1), 0)
    assert got is not None and got.data == b"c" * 7_000
    assert store.used_bytes == 10_000


def test_another_owner_cannot_overwrite(store: ShareStore) -> None:
    put(store, 1, data=b"mine", owner=OWNER_A)
    with pytest.raises(ShareRejected, match="another owner"):
        put(store, 1, data=b"evil", owner=OWNER_B)
    with pytest.raises(ShareRejected):
        put(store, 1, data=b"mine", owner=OWNER_B)
    got = store.get(pack(1), 0)
    assert got is not None and (got.data, got.owner) == (b"mine", OWNER_A)


def test_renew_only_touches_the_owners_shares(store: ShareStore) -> None:
    put(store, 1, index=0, owner=OWNER_A, lease=100)
    put(store, 1, index=1, owner=OWNER_A, lease=100)
    put(store, 2, index=0, owner=OWNER_B, lease=100)
    assert store.renew(pack(1), OWNER_B, 999) == 0
    assert store.renew(pack(2), OWNER_A, 999) == 0
    assert store.renew(pack(1), OWNER_A, 500) == 2
    leases = {(p, i): e for p, i, _, e in store.list_shares()}
    assert leases == {(pack(1), 0): 500, (pack(1), 1): 500, (pack(2), 0): 100}
    assert store.renew(pack(3), OWNER_A, 500) == 0


def test_expired(store: ShareStore) -> None:
    put(store, 1, lease=300)
    put(store, 2, lease=100)
    put(store, 3, lease=200)
    assert store.expired(99) == []
    assert store.expired(100) == [(pack(2), 0)]
    assert store.expired(250) == [(pack(2), 0), (pack(3), 0)]
    store.renew(pack(2), OWNER_A, 1000)
    assert store.expired(250) == [(pack(3), 0)]


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
