"""What a storage peer accepts, refuses and serves, without a network."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from p2pbackup.base.offload import inline
from p2pbackup.codec.descriptor import ShareDescriptor, describe_pack
from p2pbackup.codec.erasure import encode_pack
from p2pbackup.codec.packs import pack_id_of
from p2pbackup.crypto.identity import Identity
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.net.transport import Remote
from p2pbackup.shares.fetch_rules import owner_fetch
from p2pbackup.shares.holder import ShareHolder, ShareRefused
from p2pbackup.shares.messages import NoShare, PutShare, ShareData, ShareStored
from p2pbackup.store import MemoryShareStore, StoreFull

NOW = 1_700_000_000
OWNER = OwnerKeys.from_master(bytes(32)).identity
CALLER = Remote(Identity.generate().node_id, b"\0" * 32, None)


def pack(
    size: int = 90_000, lease: int = NOW + 3600, owner: Identity = OWNER
) -> tuple[bytes, list[bytes], bytes]:
    data = os.urandom(size)
    pack_id = pack_id_of(data)
    shares = encode_pack(data, 3, 10)
    descriptor = describe_pack(owner, pack_id, shares, 3, len(data), lease)
    return pack_id, shares, descriptor.to_bytes()


def holder(capacity: int = 2**30) -> ShareHolder:
    return ShareHolder(MemoryShareStore(capacity), run_sync=inline, now=lambda: NOW)


async def test_a_sound_share_is_kept_and_served_back() -> None:
    h = holder()
    pack_id, shares, descriptor = pack()
    assert isinstance(
        await h.handle(CALLER, PutShare(pack_id, 4, descriptor, shares[4])), ShareStored
    )
    served = await h.handle(CALLER, owner_fetch(OWNER, pack_id, CALLER.node_id))
    assert served == ShareData(4, descriptor, shares[4])
    unknown = os.urandom(20)
    assert isinstance(await h.handle(CALLER, owner_fetch(OWNER, unknown, CALLER.node_id)), NoShare)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("bytes", "does not match its descriptor"),
        ("index", "does not match its descriptor"),
        ("signature", "signature does not verify"),
        ("other-pack", "another pack"),
        ("expired", "already expired"),
        ("garbage-descriptor", "malformed descriptor"),
        ("index-range", "outside"),
    ],
)
async def test_unsound_shares_are_refused_with_a_reason(tamper: str, reason: str) -> None:
    h = holder()
    pack_id, shares, descriptor = pack(lease=NOW - 1 if tamper == "expired" else NOW + 3600)
    index, data = 2, shares[2]
    if tamper == "bytes":
        data = bytes([data[0] ^ 1]) + data[1:]
    elif tamper == "index":
        index = 3
    elif tamper == "signature":
        parsed = ShareDescriptor.from_bytes(descriptor)
        descriptor = replace(parsed, signature=bytes(64)).to_bytes()
    elif tamper == "other-pack":
        pack_id = os.urandom(20)
    elif tamper == "garbage-descriptor":
        descriptor = os.urandom(200)
    elif tamper == "index-range":
        index = 12
    with pytest.raises(ShareRefused, match=reason):
        await h.handle(CALLER, PutShare(pack_id, index, descriptor, data))
    assert h.store.used_bytes == 0


async def test_a_second_share_of_one_pack_is_refused() -> None:
    h = holder()
    pack_id, shares, descriptor = pack()
    await h.handle(CALLER, PutShare(pack_id, 1, descriptor, shares[1]))
    with pytest.raises(ShareRefused, match="already holds share 1"):
        await h.handle(CALLER, PutShare(pack_id, 2, descriptor, shares[2]))
    # The same share again is fine (a retried upload).
    await h.handle(CALLER, PutShare(pack_id, 1, descriptor, shares[1]))


async def test_a_full_store_refuses_with_free_and_needed_bytes() -> None:
    h = holder(capacity=1000)
    pack_id, shares, descriptor = pack()
    with pytest.raises(StoreFull, match="free"):
        await h.handle(CALLER, PutShare(pack_id, 0, descriptor, shares[0]))


async def test_the_owners_own_peer_refuses_its_shares() -> None:
    h = ShareHolder(
        MemoryShareStore(2**30), run_sync=inline, now=lambda: NOW, own_owner=OWNER.public_key
    )
    pack_id, shares, descriptor = pack()
    with pytest.raises(ShareRefused, match="belongs to the pack's owner"):
        await h.handle(CALLER, PutShare(pack_id, 0, descriptor, shares[0]))
    other_id, other_shares, other_descriptor = pack(owner=Identity.generate())
    await h.handle(CALLER, PutShare(other_id, 0, other_descriptor, other_shares[0]))


def _encoded(data: bytes, k: int, n: int, lease: int) -> tuple[list[bytes], bytes]:
    shares = encode_pack(data, k, n)
    return shares, describe_pack(OWNER, pack_id_of(data), shares, k, len(data), lease).to_bytes()


async def test_a_later_encoding_of_a_pack_replaces_the_share_held_never_the_reverse() -> None:
    h = holder()
    data = os.urandom(90_000)
    pack_id = pack_id_of(data)
    old_shares, old = _encoded(data, 3, 10, NOW + 3600)
    new_shares, new = _encoded(data, 2, 4, NOW + 7200)
    await h.handle(CALLER, PutShare(pack_id, 5, old, old_shares[5]))
    # The owner's `repair --reencode`: the new set's share takes the old one's place.
    await h.handle(CALLER, PutShare(pack_id, 1, new, new_shares[1]))
    assert h.store.indices(pack_id, OWNER.public_key) == [1]
    served = await h.handle(CALLER, owner_fetch(OWNER, pack_id, CALLER.node_id))
    assert served == ShareData(1, new, new_shares[1])
    # A repair of the old set (an earlier lease) cannot push it out again.
    with pytest.raises(ShareRefused, match="newer encoding"):
        await h.handle(CALLER, PutShare(pack_id, 5, old, old_shares[5]))
    with pytest.raises(ShareRefused, match="already holds share 1"):
        await h.handle(CALLER, PutShare(pack_id, 2, new, new_shares[2]))
    assert h.store.used_bytes == len(new_shares[1])
