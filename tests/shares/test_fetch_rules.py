"""Who a holder serves a share to, checked on the holder alone."""

from __future__ import annotations

from p2pbackup.base.offload import inline
from p2pbackup.crypto.identity import Identity
from p2pbackup.net.transport import Remote
from p2pbackup.shares.fetch_rules import owner_fetch
from p2pbackup.shares.holder import ShareHolder
from p2pbackup.shares.messages import GetShare, NoShare, PutShare, ShareData
from p2pbackup.store import MemoryShareStore
from p2pbackup.wire.messages import decode_message, encode_message
from tests.shares.test_holder import CALLER, NOW, OWNER, pack

OTHER = Remote(Identity.generate().node_id, b"\1" * 32, None)


async def _holding() -> tuple[ShareHolder, bytes]:
    h = ShareHolder(MemoryShareStore(2**30), run_sync=inline, now=lambda: NOW)
    pack_id, shares, descriptor = pack()
    await h.handle(CALLER, PutShare(pack_id, 5, descriptor, shares[5]))
    return h, pack_id


async def test_the_owners_signed_request_is_served_to_the_peer_it_names_only() -> None:
    h, pack_id = await _holding()
    request = owner_fetch(OWNER, pack_id, CALLER.node_id)
    assert isinstance(await h.handle(CALLER, request), ShareData)
    # Replayed by another identity, the proof names the wrong caller.
    assert isinstance(await h.handle(OTHER, request), NoShare)


async def test_no_proof_or_another_keys_proof_gets_no_share() -> None:
    h, pack_id = await _holding()
    assert isinstance(await h.handle(CALLER, GetShare(pack_id, OWNER.public_key)), NoShare)
    signed = owner_fetch(Identity.generate(), pack_id, CALLER.node_id)
    assert isinstance(await h.handle(CALLER, signed), NoShare)  # asks for its own share
    forged = GetShare(pack_id, OWNER.public_key, signed.owner_proof)
    assert isinstance(await h.handle(CALLER, forged), NoShare)


def test_a_request_without_proof_is_sent_as_before_and_one_with_it_round_trips() -> None:
    pack_id = b"\x44" * 20
    plain = encode_message(7, GetShare(pack_id, OWNER.public_key))
    assert b"owner_proof" not in plain
    signed = owner_fetch(OWNER, pack_id, CALLER.node_id)
    assert decode_message(encode_message(7, signed)) == (7, signed)
    assert decode_message(plain) == (7, GetShare(pack_id, OWNER.public_key))
