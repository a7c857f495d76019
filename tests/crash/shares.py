"""Share-store workloads: a new share, a lease renewal, a share replaced. Each share is
a real one (erasure-coded, its descriptor signed by its owner), so recovery can check
a file by its header exactly as it would on a peer."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from p2pbackup.codec.descriptor import ShareDescriptor, describe_pack
from p2pbackup.codec.erasure import encode_pack
from p2pbackup.crypto.identity import Identity
from p2pbackup.store import FileShareStore, StoredShare
from tests.crash.harness import Workload, ack
from tests.store.helpers import pack

OWNER = Identity.from_seed(bytes(range(32)))
CAPACITY = 10**7


def share(pack_no: int, seed: int, lease: int = 10, size: int | None = None) -> StoredShare:
    """Share 1 of a small pack of seeded bytes, with its signed descriptor."""
    data = random.Random(seed).randbytes(6000 + seed if size is None else size)
    shares = encode_pack(data, 2, 3)
    descriptor = describe_pack(OWNER, pack(pack_no), shares, 2, len(data), lease)
    return StoredShare(
        pack(pack_no), 1, shares[1], descriptor.to_bytes(), OWNER.public_key, lease, 5
    )


def renewed(held: StoredShare, lease: int) -> StoredShare:
    descriptor = ShareDescriptor.from_bytes(held.descriptor).renewed(OWNER, lease)
    return StoredShare(
        held.pack_id, held.index, held.data, descriptor.to_bytes(), held.owner, lease, 6
    )


HELD = share(1, 1)  # acknowledged before each workload starts
NEW = (share(2, 2), share(3, 3))
REPLACEMENT = share(1, 4)  # other bytes under HELD's key


def _put(store: FileShareStore, s: StoredShare) -> None:
    store.put(s.pack_id, s.index, s.data, s.descriptor, s.owner, s.lease_expiry, s.stored_at)


def _start(sync: str) -> FileShareStore:
    # FULL is the default: passing nothing then lets the workload run on older code too.
    if sync == "FULL":
        return FileShareStore(Path(sys.argv[1]), CAPACITY)
    return FileShareStore(Path(sys.argv[1]), CAPACITY, _sync=sync)


def prepare(root: Path) -> None:
    with FileShareStore(root, CAPACITY) as store:
        _put(store, HELD)


def run_put(sync: str) -> None:
    with _start(sync) as store:
        for n, s in enumerate(NEW):
            _put(store, s)
            ack(f"new{n}")


def run_renew(sync: str) -> None:
    with _start(sync) as store:
        _put(store, renewed(HELD, 20))
        ack("lease20")
        store.renew(HELD.pack_id, HELD.owner, 30, renewed(HELD, 30).descriptor)
        ack("lease30")


def run_replace(sync: str) -> None:
    with _start(sync) as store:
        _put(store, REPLACEMENT)
        ack("replaced")


def _served(store: FileShareStore, s: StoredShare) -> StoredShare | None:
    """The share under `s`'s key; whatever is served must be one that was put there."""
    got = store.get(s.pack_id, s.index, s.owner)
    candidates = {HELD.data, REPLACEMENT.data} if s.pack_id == HELD.pack_id else {s.data}
    assert got is None or got.data in candidates, "served bytes nobody put"
    return got


def check_put(root: Path, acked: tuple[str, ...]) -> None:
    with FileShareStore(root, CAPACITY) as store:
        got = _served(store, HELD)
        assert got is not None and got.data == HELD.data, "a held share was lost"
        _check_new(store, acked)


def check_first_put(root: Path, acked: tuple[str, ...]) -> None:
    """A store made by the workload itself: it opens, and holds what it acknowledged."""
    with FileShareStore(root, CAPACITY) as store:
        _check_new(store, acked)


def _check_new(store: FileShareStore, acked: tuple[str, ...]) -> None:
    for n, s in enumerate(NEW):
        got = _served(store, s)
        if f"new{n}" in acked:
            assert got is not None and got.data == s.data, f"acknowledged new{n} lost"
    _listing_agrees(store)


def check_renew(root: Path, acked: tuple[str, ...]) -> None:
    with FileShareStore(root, CAPACITY) as store:
        got = _served(store, HELD)
        assert got is not None and got.data == HELD.data, "the renewed share was lost"
        floor = max([10] + [int(label[5:]) for label in acked])
        assert got.lease_expiry >= floor, f"lease {got.lease_expiry} < acknowledged {floor}"
        _listing_agrees(store)


def check_replace(root: Path, acked: tuple[str, ...]) -> None:
    with FileShareStore(root, CAPACITY) as store:
        got = _served(store, HELD)
        assert got is not None, "neither the held share nor its replacement is served"
        if "replaced" in acked:
            assert got.data == REPLACEMENT.data, "the acknowledged replacement was lost"
        _listing_agrees(store)


def _listing_agrees(store: FileShareStore) -> None:
    """Space is counted for exactly the shares listed."""
    assert store.used_bytes == sum(info.size for info in store.list_shares())


def workload(name: str, sync: str = "FULL") -> Workload:
    """The share-store workload `name` (put, renew, replace, or first-put: a put into
    a store that does not exist yet) at a synchronous setting."""
    checks = {
        "put": check_put,
        "renew": check_renew,
        "replace": check_replace,
        "first-put": check_first_put,
    }
    run = "run_put" if name == "first-put" else f"run_{name}"
    script = f"from tests.crash.shares import {run}; {run}({sync!r})"
    start = _empty if name == "first-put" else prepare
    return Workload(f"share {name}", start, script, checks[name])


def _empty(root: Path) -> None:
    """Nothing: the workload creates the store."""
