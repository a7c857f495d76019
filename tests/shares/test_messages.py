"""Property tests for the share protocol's messages: they round-trip, and off-schema is refused.

Each field's check now rides in its annotation; these pin that every bound
(pack id length, share index, descriptor and share sizes, proof length)
still holds exactly where it did.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import p2pbackup.shares.messages as sh
import p2pbackup.shares.upkeep_messages as up
from p2pbackup.codec.descriptor import MAX_DESCRIPTOR_BYTES, MAX_LEASE_EXPIRY
from p2pbackup.codec.erasure import BLOCK_SIZE, HASH_BYTES
from p2pbackup.crypto.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from p2pbackup.errors import WireError
from p2pbackup.wire.messages import Message, decode_message, encode_message


def _exact(size: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=size, max_size=size)


pack_ids = _exact(20)
owners = _exact(PUBLIC_KEY_BYTES)
indices = st.integers(0, 254)
descriptors = st.binary(max_size=64)
data = st.binary(max_size=64)

MESSAGES: dict[type[Message], st.SearchStrategy[Message]] = {
    sh.PutShare: st.builds(
        sh.PutShare, pack_ids, indices, descriptors, data, st.none() | st.integers(0, 2**40)
    ),
    sh.ShareStored: st.just(sh.ShareStored())
    | st.builds(sh.ShareStored, data, st.lists(_exact(HASH_BYTES), max_size=64).map(tuple)),
    sh.GetShare: st.builds(sh.GetShare, pack_ids, owners, st.none() | _exact(64)),
    sh.ShareData: st.builds(sh.ShareData, indices, descriptors, data),
    sh.NoShare: st.just(sh.NoShare()),
    up.QueryShare: st.builds(up.QueryShare, pack_ids, owners),
    up.ShareHeld: st.builds(up.ShareHeld, indices, descriptors),
    up.Audit: st.builds(up.Audit, pack_ids, owners, indices, st.integers(0, 2**40)),
    up.AuditProof: st.builds(
        up.AuditProof, data, st.lists(_exact(HASH_BYTES), max_size=sh.MAX_PROOF).map(tuple)
    ),
    up.RenewLease: st.builds(up.RenewLease, pack_ids, descriptors),
    up.LeaseRenewed: st.builds(up.LeaseRenewed, st.integers(0, MAX_LEASE_EXPIRY)),
    up.ReleaseShare: st.builds(
        up.ReleaseShare, pack_ids, _exact(PUBLIC_KEY_BYTES), _exact(SIGNATURE_BYTES)
    ),
    up.ShareReleased: st.builds(up.ShareReleased, st.integers(0, 255)),
}
messages = st.one_of(*MESSAGES.values())

# Values just outside each field's bounds, or of the wrong type.
REFUSED: dict[str, list[Any]] = {
    "pack_id": [b"\x00" * 19, b"\x00" * 21, "x" * 20, None],
    "index": [-1, 255, True, 1.0, b"\x01"],
    "descriptor": [b"\x00" * (MAX_DESCRIPTOR_BYTES + 1), "d", None],
    "data": ["x", [], None],
    "block": [-1, 2**40 + 1, False],
    "proof": [[b"\x00" * (HASH_BYTES - 1)], [b"\x00" * HASH_BYTES] * (sh.MAX_PROOF + 1), b""],
    "lease_expiry": [-1, MAX_LEASE_EXPIRY + 1, 1.5],
    "owner": [b"\x00" * (PUBLIC_KEY_BYTES - 1), b"\x00" * (PUBLIC_KEY_BYTES + 1), None],
    "signature": [b"\x00" * (SIGNATURE_BYTES - 1), b"\x00" * (SIGNATURE_BYTES + 1)],
    "count": [-1, 256, None],
    # Left out when absent, never sent as null.
    "owner_proof": [b"\x00" * (SIGNATURE_BYTES - 1), b"\x00" * (SIGNATURE_BYTES + 1), None],
    "prove_block": [-1, 2**40 + 1, False, None],
}


def _body(message: Message) -> dict[str, Any]:
    body: dict[str, Any] = cbor2.loads(encode_message(7, message))
    return body


def test_every_share_message_has_a_strategy() -> None:
    declared = {
        obj
        for module in (sh, up)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Message) and obj is not Message
    }
    assert declared == set(MESSAGES)


@settings(max_examples=100)
@given(messages)
def test_round_trip(message: Message) -> None:
    assert decode_message(encode_message(7, message)) == (7, message)


@settings(max_examples=100)
@given(messages, st.data())
def test_missing_field_refused(message: Message, choice: st.DataObject) -> None:
    body = _body(message)
    # A field declared `= None` may be left out; every other one must be there.
    fields = sorted(k for k in body if k not in ("t", "id") and k not in message.OPTIONAL)
    if not fields:
        return
    del body[choice.draw(st.sampled_from(fields))]
    with pytest.raises(WireError, match="missing field"):
        decode_message(cbor2.dumps(body))


@settings(max_examples=200)
@given(messages, st.data())
def test_out_of_bounds_field_refused(message: Message, choice: st.DataObject) -> None:
    body = _body(message)
    fields = sorted(k for k in body if k in REFUSED)
    if not fields:
        return
    field = choice.draw(st.sampled_from(fields))
    body[field] = choice.draw(st.sampled_from(REFUSED[field]))
    with pytest.raises(WireError, match=f"field '{field}'"):
        decode_message(cbor2.dumps(body))


def test_largest_share_and_block_pass() -> None:
    share = sh.ShareData(254, b"\x00" * MAX_DESCRIPTOR_BYTES, b"\x00" * sh.MAX_SHARE_BYTES)
    assert decode_message(encode_message(1, share)) == (1, share)
    proof = up.AuditProof(b"\x00" * BLOCK_SIZE, (b"\x00" * HASH_BYTES,) * sh.MAX_PROOF)
    assert decode_message(encode_message(1, proof)) == (1, proof)
    stored = sh.ShareStored(b"\x00" * BLOCK_SIZE, (b"\x00" * HASH_BYTES,) * sh.MAX_PROOF)
    assert decode_message(encode_message(1, stored)) == (1, stored)
    for too_big in (
        sh.ShareData(0, b"", b"\x00" * (sh.MAX_SHARE_BYTES + 1)),
        up.AuditProof(b"\x00" * (BLOCK_SIZE + 1), ()),
        sh.ShareStored(b"\x00" * (BLOCK_SIZE + 1), ()),
    ):
        with pytest.raises(WireError):
            decode_message(encode_message(1, too_big))


@settings(max_examples=30, deadline=None)
@given(
    size=st.sampled_from([0, 1000, 65_535, 65_536, 70_000, 1_200_000]),
    request_id=st.integers(0, 2**32 - 1),
    index=st.integers(0, 254),
)
def test_a_share_is_encoded_exactly_as_cbor2_would_write_it(
    size: int, request_id: int, index: int
) -> None:
    """Big byte strings are joined into the map as they are, not copied by cbor2; the
    bytes on the wire must not change by a bit, or peers of one mesh could not talk."""
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for msg in (
        sh.PutShare(b"p" * 20, index, b"d" * 300, data),
        sh.ShareData(index, b"d" * 300, data),
    ):
        body = {**msg.to_wire(), "t": msg.TYPE.value, "id": request_id}
        encoded = encode_message(request_id, msg)
        assert encoded == cbor2.dumps(body)
        assert decode_message(encoded) == (request_id, msg)
