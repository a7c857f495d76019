"""Chunk ids and sealed blobs.

A chunk id is BLAKE2b-256 keyed with the owner's chunk-id key: equal chunks of
one owner dedup, and two owners' equal files do not reveal each other.

A sealed blob is ``nonce (24) || XChaCha20-Poly1305(flag (1) || body)``, where
flag 0 means the body is the plain bytes and flag 1 means it is a zstd frame
(compression is kept only when it saves space). The random 192-bit nonce makes
nonce reuse under one key a non-issue however many blobs an owner seals.

Associated data: `seal(key, chunk_id, plain)` binds the blob to `chunk_id`
(it opens only under the same id); `seal(key, None, plain)` binds nothing, for
blobs whose reader will not know an id (index blobs, found by locator only).
`open_sealed` must be given the same choice. Independently of that, passing
`id_key` with a chunk id makes `open_sealed` check the keyed hash of the
result, which proves the content, not just who sealed it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable

import zstandard
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_ABYTES,
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
    crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
)
from nacl.exceptions import CryptoError

from p2pbackup.crypto.in_place import xchacha_seal_blob
from p2pbackup.errors import P2PBackupError

CHUNK_ID_BYTES = 32
NONCE_BYTES = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
TAG_BYTES = crypto_aead_xchacha20poly1305_ietf_ABYTES
KEY_BYTES = crypto_aead_xchacha20poly1305_ietf_KEYBYTES
SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES + 1
ZSTD_LEVEL = 3
# Bigger than any chunk, tree or index blob we write; a frame claiming more is refused.
MAX_PLAIN_BYTES = 1 << 31

_FLAG_RAW = 0
_FLAG_ZSTD = 1


class CorruptBlob(P2PBackupError):
    """A sealed blob does not decrypt, decompress or hash to its id under this owner's keys."""


def chunk_id(key: bytes, plain: bytes | memoryview) -> bytes:
    """The owner-keyed BLAKE2b-256 id of a chunk's plain bytes."""
    return hashlib.blake2b(plain, digest_size=CHUNK_ID_BYTES, key=key).digest()


def _aad(chunk_id: bytes | None) -> bytes:
    if chunk_id is None:
        return b""
    if len(chunk_id) != CHUNK_ID_BYTES:
        raise ValueError(f"a chunk id is {CHUNK_ID_BYTES} bytes, not {len(chunk_id)}")
    return chunk_id


_compressors = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """One compressor per thread and level: setting one up costs more than compressing a
    small file, and a compressor must not be shared between threads."""
    by_level: dict[int, zstandard.ZstdCompressor] = getattr(_compressors, "by_level", {})
    _compressors.by_level = by_level
    if level not in by_level:
        by_level[level] = zstandard.ZstdCompressor(level=level)
    return by_level[level]


# A chunk bigger than this is first sampled: when a piece of its start and one of its
# middle together do not shrink by `_SAMPLE_GAIN`, the whole chunk would not either
# (photos, videos, archives, encrypted files), and compressing it is skipped.
_SAMPLE_FROM = 256 * 1024
_SAMPLE_PIECE = 16 * 1024
_SAMPLE_GAIN = 0.98


def _worth_compressing(plain: bytes, level: int) -> bool:
    if len(plain) < _SAMPLE_FROM:
        return True
    view = memoryview(plain)
    middle = len(plain) // 2
    sample = bytes(view[:_SAMPLE_PIECE]) + bytes(view[middle : middle + _SAMPLE_PIECE])
    return len(_compressor(level).compress(sample)) < _SAMPLE_GAIN * len(sample)


def _compress(plain: bytes, level: int) -> tuple[int, bytes]:
    """The flag and the body, compressed only when that is strictly smaller."""
    if not _worth_compressing(plain, level):
        return _FLAG_RAW, plain
    packed = _compressor(level).compress(plain)
    if len(packed) < len(plain):
        return _FLAG_ZSTD, packed
    return _FLAG_RAW, plain


def _decompressor() -> zstandard.ZstdDecompressor:
    """One decompressor per thread: setting one up per blob cost a tenth of a restore
    of small files."""
    decompressor: zstandard.ZstdDecompressor | None = getattr(_compressors, "unzstd", None)
    if decompressor is None:
        decompressor = _compressors.unzstd = zstandard.ZstdDecompressor()
    return decompressor


def open_inner(inner: bytes | bytearray) -> bytes:
    """The plain bytes of a decrypted blob (flag || body), for a reader that decrypted
    it itself; raises `CorruptBlob`."""
    return _decompress(inner)


def _decompress(inner: bytes | bytearray) -> bytes:
    if not inner:
        raise CorruptBlob("sealed blob has no content flag")
    flag, body = inner[0], memoryview(inner)[1:]
    if flag == _FLAG_RAW:
        return bytes(body)
    if flag != _FLAG_ZSTD:
        raise CorruptBlob(f"unknown content flag {flag}")
    try:
        size = zstandard.frame_content_size(body)
        if size < 0 or size > MAX_PLAIN_BYTES:
            raise CorruptBlob("compressed blob has no usable content size")
        return _decompressor().decompress(body, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise CorruptBlob(f"compressed blob does not decompress: {exc}") from None


def seal(
    data_key: bytes,
    chunk_id: bytes | None,
    plain: bytes,
    *,
    level: int = ZSTD_LEVEL,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Compress (if it helps) and encrypt `plain`; `chunk_id` is the associated data (or
    none when None), see the module docstring.

    `random_bytes` draws the nonce. Only the simulator hands in a seeded source, so a
    seed replays the same pack ids; a real owner keeps the operating system's."""
    if len(data_key) != KEY_BYTES:
        raise ValueError(f"a data key is {KEY_BYTES} bytes, not {len(data_key)}")
    nonce = random_bytes(NONCE_BYTES)
    flag, body = _compress(plain, level)
    return xchacha_seal_blob(nonce, flag, body, _aad(chunk_id), data_key)


def open_sealed(
    data_key: bytes,
    chunk_id: bytes | None,
    sealed: bytes | memoryview,
    *,
    id_key: bytes | None = None,
) -> bytes:
    """Decrypt and decompress a sealed blob; raises `CorruptBlob` on any failure.

    `chunk_id` must be what `seal` was given (None for unbound blobs). With `id_key` and
    a chunk id, the keyed hash of the result must also equal that id.
    """
    sealed = bytes(sealed)
    if len(sealed) < SEAL_OVERHEAD:
        raise CorruptBlob(f"sealed blob of {len(sealed)} bytes is too short")
    try:
        aad = _aad(chunk_id)
    except ValueError as exc:
        raise CorruptBlob(str(exc)) from None
    try:
        inner = crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed[NONCE_BYTES:], aad, sealed[:NONCE_BYTES], data_key
        )
    except (CryptoError, ValueError, TypeError):
        raise CorruptBlob(
            "sealed blob fails authentication (corrupted, or not this owner's)"
        ) from None
    plain = _decompress(inner)
    if id_key is not None and chunk_id is not None:
        check_chunk_id(id_key, chunk_id, plain)
    return plain


def check_chunk_id(id_key: bytes, expected: bytes, plain: bytes) -> None:
    """Raise `CorruptBlob` unless `plain` hashes to `expected` under the owner's id key."""
    if not hmac.compare_digest(chunk_id(id_key, plain), expected):
        raise CorruptBlob("blob content does not match its chunk id")
