"""The channel's AEGIS ciphers over libsodium directly: the same bytes on the wire as
PyNaCl's binding (peers using either understand each other), opened in place,
and a frame that fails its tag refused with `WireError`."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from nacl import bindings

from p2pbackup.crypto.in_place import (
    AEGIS_128L,
    AEGIS_256,
    TAG_BYTES,
    Aegis,
    new_buffer,
    open_sealed,
    seal,
    xchacha_seal_blob,
)
from p2pbackup.errors import WireError

KEY = os.urandom(32)
NONCE = os.urandom(bindings.crypto_aead_aegis256_NPUBBYTES)
SIZES = [0, 1, 31, 32, 33, 65_537, 2_800_001]
# Each cipher with the binding's own encryption and a key and nonce of its sizes.
CIPHERS: list[tuple[Aegis, Callable[..., bytes], bytes, bytes]] = [
    (AEGIS_256, bindings.crypto_aead_aegis256_encrypt, KEY, NONCE),
    (AEGIS_128L, bindings.crypto_aead_aegis128l_encrypt, KEY[:16], NONCE[:16]),
]
CIPHER_IDS = ["aegis256", "aegis128l"]  # the same names on every xdist worker


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("aegis", "theirs", "key", "nonce"), CIPHERS, ids=CIPHER_IDS)
def test_sealed_as_the_binding_seals_and_opened_by_it(
    size: int, aegis: Aegis, theirs: Callable[..., bytes], key: bytes, nonce: bytes
) -> None:
    payload = os.urandom(size)
    sealed = seal(payload, nonce, key, aegis)
    assert bytes(sealed) == theirs(payload, None, nonce, key)
    assert open_sealed(theirs(payload, None, nonce, key), nonce, key, aegis) == payload


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("aegis", "theirs", "key", "nonce"), CIPHERS, ids=CIPHER_IDS)
def test_a_writable_frame_is_opened_where_it_lies(
    size: int, aegis: Aegis, theirs: Callable[..., bytes], key: bytes, nonce: bytes
) -> None:
    payload = os.urandom(size)
    frame = new_buffer(size + TAG_BYTES)
    frame[:] = theirs(payload, None, nonce, key)
    opened = open_sealed(frame, nonce, key, aegis)
    assert opened == payload
    assert frame[:size] == payload  # no copy was made: the frame now holds the payload


def test_a_frame_sealed_by_one_cipher_does_not_open_under_the_other() -> None:
    frame = seal(b"share" * 100, NONCE[:16], KEY[:16], AEGIS_128L)
    with pytest.raises(WireError):
        open_sealed(frame, NONCE, KEY, AEGIS_256)


@pytest.mark.parametrize("aegis", [AEGIS_256, AEGIS_128L], ids=CIPHER_IDS)
def test_a_frame_seal_refuses_a_nonce_or_key_of_the_wrong_length(aegis: Aegis) -> None:
    # libsodium reads the nonce and key by pointer: a short one would be read past.
    good_key, good_nonce = bytes(aegis.key_bytes), bytes(aegis.nonce_bytes)
    with pytest.raises(ValueError, match="nonce"):
        seal(b"frame", good_nonce[1:], good_key, aegis)
    with pytest.raises(ValueError, match="key"):
        open_sealed(bytes(64), good_nonce, good_key[1:], aegis)
    assert len(seal(b"frame", good_nonce, good_key, aegis)) == 5 + TAG_BYTES


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
