"""Sealed blobs: round trip, compression choice, tamper and wrong-key detection."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.codec import chunks
from p2pbackup.codec.chunks import (
    NONCE_BYTES,
    SEAL_OVERHEAD,
    CorruptBlob,
    chunk_id,
    open_sealed,
    seal,
)

ID_KEY = bytes(range(32))
DATA_KEY = bytes(range(32, 64))
OTHER_KEY = bytes(range(64, 96))


def test_chunk_id_is_keyed_and_32_bytes() -> None:
    assert len(chunk_id(ID_KEY, b"hello")) == 32
    assert chunk_id(ID_KEY, b"hello") == chunk_id(ID_KEY, b"hello")
    assert chunk_id(ID_KEY, b"hello") != chunk_id(OTHER_KEY, b"hello")
    assert chunk_id(ID_KEY, b"hello") != chunk_id(ID_KEY, b"hellp")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=5000), st.booleans())
def test_round_trip(plain: bytes, bind: bool) -> None:
    cid = chunk_id(ID_KEY, plain) if bind else None
    sealed = seal(DATA_KEY, cid, plain)
    assert open_sealed(DATA_KEY, cid, sealed, id_key=ID_KEY) == plain


def test_compressible_data_shrinks_and_random_data_costs_only_the_overhead() -> None:
    text = b"the same line again\n" * 10_000
    assert len(seal(DATA_KEY, None, text)) < len(text) // 10
    noise = os.urandom(100_000)
    assert len(seal(DATA_KEY, None, noise)) == len(noise) + SEAL_OVERHEAD


def test_a_big_chunk_that_cannot_shrink_is_not_compressed_at_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Photos, videos and archives: a sample of the chunk decides, and the whole chunk is
    never handed to zstd; a big chunk that does shrink still is compressed."""
    fed: list[int] = []
    real = chunks._compressor

    class Counting:
        def __init__(self, level: int) -> None:
            self.inner = real(level)

        def compress(self, data: bytes) -> bytes:
            fed.append(len(data))
            return self.inner.compress(data)

    monkeypatch.setattr(chunks, "_compressor", Counting)
    noise = os.urandom(1 << 20)
    assert len(seal(DATA_KEY, None, noise)) == len(noise) + SEAL_OVERHEAD
    assert fed and max(fed) < len(noise) // 8
    fed.clear()
    text = b"".join(b"line %d of a log file\n" % i for i in range(60_000))
    assert len(text) > 1 << 20
    sealed = seal(DATA_KEY, None, text)
    assert len(sealed) < len(text) // 3 and max(fed) == len(text)
    assert open_sealed(DATA_KEY, None, sealed) == text


def test_nonces_are_fresh() -> None:
    a = seal(DATA_KEY, None, b"same")
    b = seal(DATA_KEY, None, b"same")
    assert a[:NONCE_BYTES] != b[:NONCE_BYTES]
    assert a != b


@settings(max_examples=80, deadline=None)
@given(st.binary(min_size=0, max_size=300), st.data())
def test_any_flipped_byte_is_detected(plain: bytes, data: st.DataObject) -> None:
    cid = chunk_id(ID_KEY, plain)
    sealed = bytearray(seal(DATA_KEY, cid, plain))
    position = data.draw(st.integers(0, len(sealed) - 1))
    bit = data.draw(st.integers(0, 7))
    sealed[position] ^= 1 << bit
    with pytest.raises(CorruptBlob):
        open_sealed(DATA_KEY, cid, bytes(sealed), id_key=ID_KEY)


def test_truncated_and_empty_blobs_are_corrupt() -> None:
    sealed = seal(DATA_KEY, None, b"some bytes")
    for broken in (b"", sealed[:10], sealed[:-1], sealed + b"\x00"):
        with pytest.raises(CorruptBlob):
            open_sealed(DATA_KEY, None, broken)


def test_wrong_key_fails() -> None:
    sealed = seal(DATA_KEY, None, b"secret")
    with pytest.raises(CorruptBlob):
        open_sealed(OTHER_KEY, None, sealed)


def test_bound_id_must_match() -> None:
    cid = chunk_id(ID_KEY, b"one")
    other = chunk_id(ID_KEY, b"two")
    sealed = seal(DATA_KEY, cid, b"one")
    with pytest.raises(CorruptBlob):
        open_sealed(DATA_KEY, other, sealed)
    with pytest.raises(CorruptBlob):
        open_sealed(DATA_KEY, None, sealed)
    with pytest.raises(CorruptBlob):
        open_sealed(DATA_KEY, b"short", sealed)


def test_content_check_catches_a_blob_sealed_under_the_wrong_id() -> None:
    """A blob sealed (by the owner) under an id that is not its content's fails the id check."""
    wrong = chunk_id(ID_KEY, b"something else")
    sealed = seal(DATA_KEY, wrong, b"content")
    assert open_sealed(DATA_KEY, wrong, sealed) == b"content"
    with pytest.raises(CorruptBlob):
        open_sealed(DATA_KEY, wrong, sealed, id_key=ID_KEY)


def test_corrupt_blob_is_a_p2pbackup_error() -> None:
    from p2pbackup.errors import P2PBackupError

    assert issubclass(CorruptBlob, P2PBackupError)


@settings(max_examples=60, deadline=None)
@given(
    st.binary(max_size=70_000) | st.integers(0, 70_000).map(bytes),
    st.booleans(),
    st.binary(min_size=24, max_size=24),
)
def test_a_blob_is_sealed_to_the_bytes_pynacl_gives(
    plain: bytes, with_id: bool, nonce: bytes
) -> None:
    """Written in place, a sealed blob is still nonce || AEAD(flag || body), byte for
    byte what the binding's own call gives, compressed or not, bound to an id or not."""
    from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

    key = bytes(range(32))
    chunk = chunks.chunk_id(bytes(32), plain) if with_id else None
    sealed = chunks.seal(key, chunk, plain, random_bytes=lambda _: nonce)
    flag, body = chunks._compress(plain, chunks.ZSTD_LEVEL)
    inner = bytes([flag]) + body
    aad = chunk if chunk is not None else b""
    assert sealed == nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(inner, aad, nonce, key)
    assert chunks.open_sealed(key, chunk, sealed) == plain
