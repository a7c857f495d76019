"""Share descriptors: signing, verification, strict parsing, share checks."""

from __future__ import annotations

import dataclasses
import random

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.codec.descriptor import (
    ShareDescriptor,
    describe_pack,
    sign_descriptor,
)
from p2pbackup.codec.erasure import TREE_BLAKE2B, encode_pack, share_root
from p2pbackup.codec.packs import pack_id_of
from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import WireError

OWNER = Identity.from_seed(b"\x11" * 32)
OTHER = Identity.from_seed(b"\x22" * 32)
PACK = random.Random(5).randbytes(50_000)
SHARES = encode_pack(PACK, 3, 10)
DESC = describe_pack(OWNER, pack_id_of(PACK), SHARES, 3, len(PACK), 1_900_000_000)


def test_sign_and_verify() -> None:
    assert DESC.verify()
    assert DESC.owner == OWNER.public_key
    assert (DESC.k, DESC.n, DESC.length) == (3, 10, len(PACK))
    assert DESC.share_size == len(SHARES[0])


def test_one_descriptor_object_checks_its_signature_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from p2pbackup.codec import descriptor

    checks: list[bytes] = []

    def counting(public_key: bytes, message: bytes, signature: bytes) -> bool:
        checks.append(signature)
        return real(public_key, message, signature)

    real = descriptor.verify_signature
    monkeypatch.setattr(descriptor, "verify_signature", counting)
    fresh = ShareDescriptor.from_bytes(DESC.to_bytes())
    assert fresh.verify() and fresh.verify()
    assert len(checks) == 1
    forged = dataclasses.replace(fresh, lease_expiry=fresh.lease_expiry + 1)
    assert not forged.verify()  # a changed copy is checked anew, not taken on its source's word
    assert len(checks) == 2


def test_parsed_descriptors_are_shared_and_only_small_ones_are_kept() -> None:
    from p2pbackup.codec.descriptor import PARSED_MAX_BYTES, parsed_descriptor

    small = DESC.to_bytes()
    assert len(small) <= PARSED_MAX_BYTES
    assert parsed_descriptor(small) is parsed_descriptor(bytes(small))
    wide_shares = encode_pack(PACK, 3, 100)
    wide = describe_pack(OWNER, pack_id_of(PACK), wide_shares, 3, len(PACK), 1_900_000_000)
    large = wide.to_bytes()
    assert len(large) > PARSED_MAX_BYTES  # anyone may put one: it is not kept
    assert parsed_descriptor(large) == parsed_descriptor(large)
    assert parsed_descriptor(large) is not parsed_descriptor(large)


def test_bytes_round_trip() -> None:
    data = DESC.to_bytes()
    back = ShareDescriptor.from_bytes(data)
    assert back == DESC
    assert back.verify()
    assert back.to_bytes() == data  # canonical: one encoding per descriptor


@pytest.mark.parametrize(
    "change",
    [
        {"pack_id": b"\x00" * 20},
        {"k": 4},
        {"n": 9},
        {"length": len(PACK) + 1},
        {"lease_expiry": 2_000_000_000},
        {"owner": OTHER.public_key},
        {"signature": b"\x00" * 64},
    ],
)
def test_any_changed_field_fails_verification(change: dict[str, object]) -> None:
    assert not dataclasses.replace(DESC, **change).verify()  # type: ignore[arg-type]


def test_changed_root_fails_verification() -> None:
    roots = list(DESC.roots)
    roots[4] = bytes(32)
    assert not dataclasses.replace(DESC, roots=tuple(roots)).verify()


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_flipped_byte_never_verifies_and_only_raises_wire_error(data: st.DataObject) -> None:
    raw = bytearray(DESC.to_bytes())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= 1 << data.draw(st.integers(0, 7))
    try:
        parsed = ShareDescriptor.from_bytes(bytes(raw))
    except WireError:
        return
    assert not parsed.verify()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_raises_only_wire_error(garbage: bytes) -> None:
    with pytest.raises(WireError):
        ShareDescriptor.from_bytes(garbage)


def _fields() -> dict[str, object]:
    decoded = cbor2.loads(DESC.to_bytes())
    assert isinstance(decoded, dict)
    return decoded


@pytest.mark.parametrize(
    "edit",
    [
        {"k": 0},
        {"k": 11},
        {"n": 256},
        {"k": True},
        {"roots": []},
        {"share": 1},
        {"sig": b"short"},
        {"extra": 1},
        {"v": 3},
        {"v": 0},
        {"len": -1},
    ],
)
def test_schema_violations_are_wire_errors(edit: dict[str, object]) -> None:
    fields = _fields()
    fields.update(edit)
    with pytest.raises(WireError):
        ShareDescriptor.from_bytes(cbor2.dumps(fields))


def test_missing_field_and_oversize_input() -> None:
    fields = _fields()
    del fields["lease"]
    with pytest.raises(WireError, match="lease"):
        ShareDescriptor.from_bytes(cbor2.dumps(fields))
    with pytest.raises(WireError):
        ShareDescriptor.from_bytes(b"\x00" * 20_000)
    with pytest.raises(WireError):
        ShareDescriptor.from_bytes(cbor2.dumps([1, 2, 3]))


def test_check_share() -> None:
    for i, share in enumerate(SHARES):
        assert DESC.check_share(i, share)
    assert not DESC.check_share(0, SHARES[1])
    assert not DESC.check_share(10, SHARES[0])
    assert not DESC.check_share(0, SHARES[0][:-1])
    flipped = bytearray(SHARES[3])
    flipped[0] ^= 1
    assert not DESC.check_share(3, bytes(flipped))


def test_a_version_1_descriptor_still_checks_its_blake2b_shares() -> None:
    """Packs signed before BLAKE3 trees keep being verified, audited and renewed under
    the hash their roots were made with; the version is signed like every other field."""
    blake2b_roots = tuple(share_root(s, TREE_BLAKE2B) for s in SHARES)
    old = dataclasses.replace(DESC, version=1, roots=blake2b_roots).renewed(OWNER, 1_900_000_000)
    back = ShareDescriptor.from_bytes(old.to_bytes())
    assert back == old and back.version == 1 and back.verify()
    assert all(back.check_share(i, share) for i, share in enumerate(SHARES))
    assert DESC.version == 2 and not DESC.check_share(0, b"")
    assert not dataclasses.replace(back, version=2).verify()
    assert back.renewed(OWNER, 2_000_000_000).version == 1


def test_renewed_lease_is_signed_again() -> None:
    renewed = DESC.renewed(OWNER, 2_100_000_000)
    assert renewed.verify() and renewed.lease_expiry == 2_100_000_000
    assert renewed.roots == DESC.roots
    with pytest.raises(ValueError):
        DESC.renewed(OTHER, 2_100_000_000)


def test_sign_descriptor_checks_its_inputs() -> None:
    with pytest.raises(ValueError):
        sign_descriptor(OWNER, b"\x00" * 20, 3, 10, 100, [b"\x00" * 32] * 9, 0)
    with pytest.raises(ValueError):
        sign_descriptor(OWNER, b"\x00" * 19, 3, 10, 100, [b"\x00" * 32] * 10, 0)
