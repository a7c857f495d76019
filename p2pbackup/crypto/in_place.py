"""libsodium's AEADs called directly, into buffers the caller owns: the transport's
AEGIS-256 frames, and a restore's XChaCha20-Poly1305 blobs.

PyNaCl's binding zeroes a fresh output array, runs the cipher into it, then
copies the result out into `bytes`: three passes over every share where the
cipher needs one. Here a sealed frame is written straight into an
uninitialised buffer, and a received frame is opened where it lies (libsodium
reads each block before writing it, so input and output may be the same
memory; on a failed tag it zeroes the output, which is then dropped).
"""

from __future__ import annotations

from typing import Any

from nacl import bindings
from nacl._sodium import ffi, lib

from p2pbackup.errors import WireError

TAG_BYTES = bindings.crypto_aead_aegis256_ABYTES
_uninitialised = ffi.new_allocator(should_clear_after_alloc=False)

Buffer = bytes | bytearray | memoryview


def new_buffer(size: int) -> memoryview:
    """`size` writable bytes, not cleared: every one is written before it is read."""
    return memoryview(ffi.buffer(_uninitialised("unsigned char[]", max(size, 1)), size))


def seal(payload: Buffer, nonce: bytes, key: bytes) -> memoryview:
    """`payload` encrypted and tagged, in a new buffer of its length plus `TAG_BYTES`."""
    size = len(payload)
    out = new_buffer(size + TAG_BYTES)
    written = ffi.new("unsigned long long *")
    status = lib.crypto_aead_aegis256_encrypt(
        _pointer(out), written, _pointer(payload), size, ffi.NULL, 0, ffi.NULL, nonce, key
    )
    if status != 0 or written[0] != len(out):
        raise WireError("a frame could not be sealed")
    return out


def open_sealed(frame: Buffer, nonce: bytes, key: bytes) -> memoryview:
    """The payload of a sealed `frame`, opened in place when the frame's memory is
    writable (the frame is spent either way); `WireError` if it fails its tag."""
    size = len(frame) - TAG_BYTES
    if size < 0:
        raise WireError("a frame failed authentication")
    view = memoryview(frame)
    out = view if not view.readonly else new_buffer(size)
    written = ffi.new("unsigned long long *")
    status = lib.crypto_aead_aegis256_decrypt(
        _pointer(out), written, ffi.NULL, _pointer(view), len(view), ffi.NULL, 0, nonce, key
    )
    if status != 0:
        raise WireError("a frame failed authentication")
    return out[:size]


def xchacha_open_into(out: bytearray, sealed: Buffer, nonce: Buffer, key: bytes) -> bool:
    """Open XChaCha20-Poly1305 `sealed` (ciphertext and tag) into `out`, which holds
    exactly its plain bytes; False if it fails its tag. The binding's own call makes
    a zeroed buffer and copies it out; this one writes into `out`, and lets go of the
    interpreter lock all the same."""
    opened = ffi.new("unsigned long long *")
    failed = lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
        ffi.from_buffer("unsigned char[]", out, require_writable=True),
        opened,
        ffi.NULL,
        _pointer(sealed),
        len(sealed),
        ffi.NULL,
        0,
        _pointer(nonce),
        key,
    )
    return failed == 0


def _pointer(data: Buffer) -> Any:
    """A C pointer to `data`'s first byte, without copying it (input may be read-only)."""
    return ffi.from_buffer("unsigned char[]", data, require_writable=False)
