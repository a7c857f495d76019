"""How a holder answers an audit and a renewal: a put that names a block is proven in
its reply from its own bytes (decision 0070); an audit right after a put that named
none reads one block back, its path made from the leaves the put hashed (decision
0052); any later audit costs one read and one trip to a worker thread, and never
vouches for a share that rotted anywhere on disk; a renewal reads no share."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from p2pbackup.base.offload import inline
from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.codec.erasure import BLOCK_SIZE, block_count
from p2pbackup.errors import P2PBackupError
from p2pbackup.shares.audit_log import AuditLog
from p2pbackup.shares.holder import ShareHolder
from p2pbackup.shares.messages import PutShare, ShareStored
from p2pbackup.shares.proving import challenge, proves, stored_proves
from p2pbackup.shares.upkeep_messages import Audit, LeaseRenewed, QueryShare, RenewLease, ShareHeld
from p2pbackup.store import FileShareStore, MemoryShareStore, ShareStore, layout
from tests.shares.test_holder import CALLER, NOW, OWNER, pack

T = TypeVar("T")


class Counted:
    """An inline `run_sync` that counts the trips a real peer would make to a thread."""

    def __init__(self) -> None:
        self.trips = 0

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        self.trips += 1
        return await inline(fn, *args)


async def placed(store: ShareStore, run_sync: Any = inline) -> tuple[ShareHolder, Any]:
    """A holder with share 1 of a four-block pack put in it; the descriptor."""
    h = ShareHolder(store, run_sync=run_sync, now=lambda: NOW)
    pack_id, shares, descriptor = pack(size=3 * 4 * BLOCK_SIZE - 100)
    assert block_count(len(shares[1])) == 4
    assert isinstance(
        await h.handle(CALLER, PutShare(pack_id, 1, descriptor, shares[1])), ShareStored
    )
    return h, ShareDescriptor.from_bytes(descriptor)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every share file read from here on."""
    seen: list[Path] = []
    read = layout.read_share

    def counted_read(path: Path, skip: int = 0) -> bytes | None:
        seen.append(path)
        return read(path, skip)

    monkeypatch.setattr(layout, "read_share", counted_read)
    return seen


def rot(store: FileShareStore, descriptor: ShareDescriptor, block: int) -> None:
    """Flip one bit of block `block` of share 1 on disk."""
    path = store.path_of(descriptor.pack_id, 1, OWNER.public_key)
    blob = bytearray(path.read_bytes())
    blob[len(blob) - descriptor.share_size + block * BLOCK_SIZE + 7] ^= 1
    path.write_bytes(bytes(blob))


async def test_an_audit_takes_one_trip_and_one_read(tmp_path: Path, reads: list[Path]) -> None:
    run_sync = Counted()
    with FileShareStore(tmp_path, 2**30) as store:
        h, descriptor = await placed(store, run_sync)
        rng = random.Random(1)
        for audits in range(7):
            audit = challenge(descriptor, 1, rng)
            run_sync.trips, reads[:] = 0, []
            assert proves(descriptor, audit, await h.handle(CALLER, audit))
            # The first, right after the put, reads one block and not the whole share.
            assert (run_sync.trips, len(reads)) == (1, 0 if audits == 0 else 1)


@pytest.mark.parametrize("block", [2, 3])  # the last block is shorter than the others
async def test_the_audit_after_a_put_reads_only_the_block_it_proves(
    tmp_path: Path, reads: list[Path], monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    read: list[int] = []
    read_range = layout.read_range

    def counted(path: Path, start: int, length: int) -> bytes | None:
        found = read_range(path, start, length)
        read.append(len(found or b""))
        return found

    monkeypatch.setattr(layout, "read_range", counted)
    with FileShareStore(tmp_path, 2**30) as store:
        h, descriptor = await placed(store)
        audit = Audit(descriptor.pack_id, OWNER.public_key, 1, block)
        reads[:], read[:] = [], []
        assert proves(descriptor, audit, await h.handle(CALLER, audit))
        assert reads == [] and len(read) == 1 and 0 < read[0] <= BLOCK_SIZE


@pytest.mark.parametrize("rotted_block", [0, 3])
async def test_a_share_rotted_in_any_block_is_not_vouched_for_and_is_dropped(
    tmp_path: Path, rotted_block: int
) -> None:
    """The proof asked for is of block 2; rot in another block still fails it, from the
    second audit after the put on (the first proves the block from the put's leaves)."""
    with FileShareStore(tmp_path, 2**30) as store:
        h, descriptor = await placed(store)
        audit = Audit(descriptor.pack_id, OWNER.public_key, 1, 2)
        rot(store, descriptor, rotted_block)
        assert proves(descriptor, audit, await h.handle(CALLER, audit))
        with pytest.raises(P2PBackupError, match="no such share"):
            await h.handle(CALLER, audit)
        assert not store.has(descriptor.pack_id, 1, OWNER.public_key)


@pytest.mark.parametrize("block", [0, 3])
async def test_the_audit_after_a_put_never_vouches_for_a_rotted_block(
    tmp_path: Path, block: int
) -> None:
    """Answered from the put's leaves, the block itself is still read and checked."""
    with FileShareStore(tmp_path, 2**30) as store:
        h, descriptor = await placed(store)
        rot(store, descriptor, block)
        with pytest.raises(P2PBackupError, match="no such share"):
            await h.handle(CALLER, Audit(descriptor.pack_id, OWNER.public_key, 1, block))
        assert not store.has(descriptor.pack_id, 1, OWNER.public_key)


async def test_an_audit_of_a_block_past_the_end_is_refused(tmp_path: Path) -> None:
    with FileShareStore(tmp_path, 2**30) as store:
        h, descriptor = await placed(store)
        with pytest.raises(P2PBackupError, match="no such share"):
            await h.handle(CALLER, Audit(descriptor.pack_id, OWNER.public_key, 1, 4))
        assert store.has(descriptor.pack_id, 1, OWNER.public_key)  # nothing wrong with it


async def test_a_memory_store_answers_audits_alike() -> None:
    h, descriptor = await placed(MemoryShareStore(2**30))
    for block in range(4):
        audit = Audit(descriptor.pack_id, OWNER.public_key, 1, block)
        assert proves(descriptor, audit, await h.handle(CALLER, audit))


async def test_a_renewal_reads_no_share(tmp_path: Path, reads: list[Path]) -> None:
    with FileShareStore(tmp_path, 2**30) as store:
        h, descriptor = await placed(store)
        renewed = descriptor.renewed(OWNER, descriptor.lease_expiry + 60)
        answer = await h.handle(CALLER, RenewLease(descriptor.pack_id, renewed.to_bytes()))
        assert answer == LeaseRenewed(renewed.lease_expiry)
        assert reads == []
        held = store.get(descriptor.pack_id, 1, OWNER.public_key)
        assert held is not None and held.lease_expiry == renewed.lease_expiry


async def test_a_put_that_names_a_block_proves_it_once_the_share_is_durable(
    tmp_path: Path, reads: list[Path]
) -> None:
    """One exchange and one trip: the reply proves the block the put named, built from
    the bytes it carried and the path its check computed, once the store has taken the
    share (decisions 0057, 0070); nothing is read back, no leaves are kept."""
    run_sync = Counted()
    with FileShareStore(tmp_path, 2**30) as store:
        h = ShareHolder(store, run_sync=run_sync, now=lambda: NOW)
        pack_id, shares, descriptor_bytes = pack(size=3 * 4 * BLOCK_SIZE - 100)
        descriptor = ShareDescriptor.from_bytes(descriptor_bytes)
        held_when_stored: list[bool] = []
        put_share = store.put

        def checked_put(*args: Any, **kwargs: Any) -> None:
            put_share(*args, **kwargs)
            held_when_stored.append(store.has(pack_id, 1, OWNER.public_key))

        store.put = checked_put  # type: ignore[method-assign]
        put = PutShare(pack_id, 1, descriptor_bytes, shares[1], prove_block=3)
        reply = await h.handle(CALLER, put)
        assert isinstance(reply, ShareStored) and reply.block is not None
        audit = Audit(pack_id, OWNER.public_key, 1, 3)
        assert stored_proves(descriptor, audit, reply)
        assert not stored_proves(descriptor, Audit(pack_id, OWNER.public_key, 1, 2), reply)
        assert held_when_stored == [True]
        assert (run_sync.trips, reads, len(store._fresh)) == (1, [], 0)
        # A plain put still answers plainly, and a block the share lacks gets no proof.
        assert await h.handle(CALLER, PutShare(pack_id, 1, descriptor_bytes, shares[1])) == (
            ShareStored()
        )
        beyond = PutShare(pack_id, 1, descriptor_bytes, shares[1], prove_block=4)
        assert await h.handle(CALLER, beyond) == ShareStored()


async def test_a_put_the_store_refuses_proves_nothing(tmp_path: Path) -> None:
    """The proof comes only from a put the store took: a full store answers with its
    refusal, never with a block and a path."""
    with FileShareStore(tmp_path, BLOCK_SIZE) as store:
        h = ShareHolder(store, run_sync=inline, now=lambda: NOW)
        pack_id, shares, descriptor_bytes = pack(size=3 * 4 * BLOCK_SIZE - 100)
        put = PutShare(pack_id, 1, descriptor_bytes, shares[1], prove_block=0)
        with pytest.raises(P2PBackupError, match="full"):
            await h.handle(CALLER, put)
        assert not store.has(pack_id, 1, OWNER.public_key)


@pytest.mark.parametrize("make", [MemoryShareStore, FileShareStore])
async def test_a_put_that_names_a_block_is_proven_by_every_store(
    tmp_path: Path, make: Callable[..., ShareStore]
) -> None:
    store = make(tmp_path, 2**30) if make is FileShareStore else make(2**30)
    h = ShareHolder(store, run_sync=inline, now=lambda: NOW)
    pack_id, shares, descriptor_bytes = pack(size=3 * 4 * BLOCK_SIZE - 100)
    descriptor = ShareDescriptor.from_bytes(descriptor_bytes)
    for block in range(4):
        put = PutShare(pack_id, 2, descriptor_bytes, shares[2], prove_block=block)
        reply = await h.handle(CALLER, put)
        assert stored_proves(descriptor, Audit(pack_id, OWNER.public_key, 2, block), reply)
    store.close()


async def test_a_query_that_names_a_block_proves_it_and_counts_as_an_audit(
    tmp_path: Path,
) -> None:
    """Decision 0066: the survey's audit rides in its query; the asker is noted as an
    auditor, and a block that cannot be proven leaves the claim without a proof."""
    with FileShareStore(tmp_path, 2**30) as store:
        h, descriptor = await placed(store)
        log = AuditLog(clock=lambda: NOW)
        h.audit_log = log
        for block in range(4):
            query = QueryShare(descriptor.pack_id, OWNER.public_key, block)
            held = await h.handle(CALLER, query)
            assert isinstance(held, ShareHeld) and held.index == 1
            audit = Audit(descriptor.pack_id, OWNER.public_key, 1, block)
            assert proves(descriptor, audit, held.audit_proof())
        assert log.auditors(descriptor.pack_id, within=60) == [CALLER.node_id]
        plain = await h.handle(CALLER, QueryShare(descriptor.pack_id, OWNER.public_key))
        assert isinstance(plain, ShareHeld) and plain.audit_proof() is None
        past = await h.handle(CALLER, QueryShare(descriptor.pack_id, OWNER.public_key, 4))
        assert isinstance(past, ShareHeld) and past.index == 1 and past.audit_proof() is None


@pytest.mark.parametrize("make", [MemoryShareStore, FileShareStore])
async def test_a_share_put_as_a_view_of_its_frame_is_stored_whole(
    tmp_path: Path, make: Callable[..., ShareStore]
) -> None:
    """Decision 0076: the share a put carries is a view of its frame; each store keeps
    the share's bytes (the memory store a copy), whatever the frame's memory does after,
    and the reply's block is bytes of its own."""
    store = make(tmp_path, 2**30) if make is FileShareStore else make(2**30)
    h = ShareHolder(store, run_sync=inline, now=lambda: NOW)
    pack_id, shares, descriptor_bytes = pack(size=3 * 4 * BLOCK_SIZE - 100)
    frame = bytearray(shares[2])
    put = PutShare(pack_id, 2, descriptor_bytes, memoryview(frame).toreadonly(), prove_block=1)
    reply = await h.handle(CALLER, put)
    assert isinstance(reply, ShareStored) and type(reply.block) is bytes
    frame[:] = bytes(len(frame))  # the frame's buffer is let go and written over
    held = store.get(pack_id, 2, OWNER.public_key)
    assert held is not None and held.data == shares[2] and type(held.data) is bytes
    store.close()
