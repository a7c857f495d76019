"""The channel's AEGIS-256 over libsodium directly: the same bytes on the wire as
PyNaCl's binding (peers using either understand each other), opened in place,
and a frame that fails its tag refused with `WireError`."""

from __future__ import annotations

import os

import pytest
from nacl import bindings

from p2pbackup.crypto.in_place import (
    TAG_BYTES,
    new_buffer,
    open_sealed,
    seal,
    xchacha_seal_blob,
)
from p2pbackup.errors import WireError

KEY = os.urandom(32)
NONCE = os.urandom(bindings.crypto_aead_aegis256_NPUBBYTES)
SIZES = [0, 1, 31, 32, 33, 65_537, 2_800_001]


@pytest.mark.parametrize("size", SIZES)
def test_sealed_as_the_binding_seals_and_opened_by_it(size: int) -> None:
    payload = os.urandom(size)
    sealed = seal(payload, NONCE, KEY)
    assert bytes(sealed) == bindings.crypto_aead_aegis256_encrypt(payload, None, NONCE, KEY)
    theirs = bindings.crypto_aead_aegis256_encrypt(payload, None, NONCE, KEY)
    assert open_sealed(theirs, NONCE, KEY) == payload


@pytest.mark.parametrize("size", SIZES)
def test_a_writable_frame_is_opened_where_it_lies(size: int) -> None:
    payload = os.urandom(size)
    frame = new_buffer(size + TAG_BYTES)
    frame[:] = bindings.crypto_aead_aegis256_encrypt(payload, None, NONCE, KEY)
    opened = open_sealed(frame, NONCE, KEY)
    assert opened == payload
    assert frame[:size] == payload  # no copy was made: the frame now holds the payload


def test_a_read_only_frame_is_left_as_it_was() -> None:
    frame = bindings.crypto_aead_aegis256_encrypt(b"share" * 1000, None, NONCE, KEY)
    kept = bytes(frame)
    assert open_sealed(frame, NONCE, KEY) == b"share" * 1000
    assert frame == kept


@pytest.mark.parametrize("where", [0, 1000, -1])
def test_a_tampered_frame_is_refused(where: int) -> None:
    frame = bytearray(seal(os.urandom(5000), NONCE, KEY))
    frame[where] ^= 1
    with pytest.raises(WireError):
        open_sealed(frame, NONCE, KEY)


def test_a_frame_under_the_nonce_of_another_is_refused() -> None:
    frame = seal(b"one", NONCE, KEY)
    with pytest.raises(WireError):
        open_sealed(frame, bytes(len(NONCE)), KEY)


@pytest.mark.parametrize("length", [0, 1, TAG_BYTES - 1])
def test_a_frame_shorter_than_its_tag_is_refused(length: int) -> None:
    with pytest.raises(WireError):
        open_sealed(os.urandom(length), NONCE, KEY)


def test_a_blob_seal_refuses_a_nonce_or_key_of_the_wrong_length() -> None:
    # libsodium would read past a short nonce or key: they are checked before the call.
    with pytest.raises(ValueError, match="nonce"):
        xchacha_seal_blob(bytes(23), 0, b"body", b"", bytes(32))
    with pytest.raises(ValueError, match="key"):
        xchacha_seal_blob(bytes(24), 0, b"body", b"", bytes(31))
    assert len(xchacha_seal_blob(bytes(24), 0, b"body", b"", bytes(32))) == 24 + 1 + 4 + 16
