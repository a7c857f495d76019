"""libsodium's AEADs called directly, into buffers the caller owns: the transport's
AEGIS frames, a backup's and a restore's XChaCha20-Poly1305 blobs.

PyNaCl's binding zeroes a fresh output array, runs the cipher into it, then
copies the result out into `bytes`: three passes over every share where the
cipher needs one. Here a sealed frame is written straight into an
uninitialised buffer, and a received frame is opened where it lies (libsodium
reads each block before writing it, so input and output may be the same
memory; on a failed tag it zeroes the output, which is then dropped).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

from nacl import bindings
from nacl._sodium import ffi, lib

from p2pbackup.errors import WireError

TAG_BYTES = bindings.crypto_aead_aegis256_ABYTES
_XCHACHA_TAG_BYTES = bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES
_XCHACHA_NONCE_BYTES = bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_XCHACHA_KEY_BYTES = bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
_uninitialised = ffi.new_allocator(should_clear_after_alloc=False)

Buffer = bytes | bytearray | memoryview


# CPython's own constructor of a bytes object whose bytes are not yet written: its C
# functions make their results this way, and fill them before anyone sees them.
_new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
_new_bytes.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
_new_bytes.restype = ctypes.py_object


def unwritten_bytes(size: int) -> tuple[bytes, Any]:
    """A new bytes object of `size` bytes and a pointer to its first byte, for C code
    to write every byte of it before the object is handed on. Bytes of length 0 or 1
    are shared singletons, so `size` must be at least 2."""
    if size < 2:
        raise ValueError(f"unwritten bytes need a size of at least 2, not {size}")
    out = _new_bytes(None, size)
    return out, ffi.cast("unsigned char *", ffi.from_buffer(out))


def address_of(data: Buffer) -> int:
    """The address of `data`'s first byte, for a ctypes call; valid while `data` lives."""
    return int(ffi.cast("uintptr_t", _pointer(data)))


def _check_lengths(
    cipher: str, nonce: Buffer, key: bytes, nonce_bytes: int, key_bytes: int
) -> None:
    """libsodium reads a nonce and key by pointer, trusting their lengths: a short one
    would be read past its end, so each is checked before the call."""
    if len(nonce) != nonce_bytes or len(key) != key_bytes:
        raise ValueError(
            f"{cipher} takes a {nonce_bytes}-byte nonce and a {key_bytes}-byte key, "
            f"not {len(nonce)} and {len(key)}"
        )


def xchacha_seal_blob(nonce: bytes, flag: int, body: Buffer, aad: bytes, key: bytes) -> bytes:
    """``nonce || XChaCha20-Poly1305(flag || body)``, written once into new bytes.

    PyNaCl's call needs `flag || body` joined first, zeroes its output, copies it out,
    and the nonce is joined on after: four passes over a chunk besides the cipher's.
    Here the body is copied once, behind the nonce and flag, and sealed where it lies
    (libsodium reads each block before it writes it)."""
    _check_lengths("XChaCha20-Poly1305", nonce, key, _XCHACHA_NONCE_BYTES, _XCHACHA_KEY_BYTES)
    nonce_bytes = len(nonce)
    size = len(body) + 1
    out, at = unwritten_bytes(nonce_bytes + size + _XCHACHA_TAG_BYTES)
    ffi.memmove(at, nonce, nonce_bytes)
    at[nonce_bytes] = flag
    ffi.memmove(at + nonce_bytes + 1, _pointer(body), size - 1)
    sealed = ffi.new("unsigned long long *")
    inner = at + nonce_bytes
    status = lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
        inner, sealed, inner, size, aad or ffi.NULL, len(aad), ffi.NULL, nonce, key
    )
    if status != 0 or nonce_bytes + sealed[0] != len(out):
        raise ValueError("a blob could not be sealed")
    return out


@dataclass(frozen=True)
class Aegis:
    """One of libsodium's AEGIS ciphers, as a channel seals and opens frames with it.
    Both tag a frame with `TAG_BYTES`."""

    name: str
    encrypt: Any
    decrypt: Any
    key_bytes: int
    nonce_bytes: int

    def check(self, nonce: bytes, key: bytes) -> None:
        _check_lengths(self.name, nonce, key, self.nonce_bytes, self.key_bytes)


AEGIS_256 = Aegis(
    "AEGIS-256",
    lib.crypto_aead_aegis256_encrypt,
    lib.crypto_aead_aegis256_decrypt,
    bindings.crypto_aead_aegis256_KEYBYTES,
    bindings.crypto_aead_aegis256_NPUBBYTES,
)
AEGIS_128L = Aegis(
    "AEGIS-128L",
    lib.crypto_aead_aegis128l_encrypt,
    lib.crypto_aead_aegis128l_decrypt,
    bindings.crypto_aead_aegis128l_KEYBYTES,
    bindings.crypto_aead_aegis128l_NPUBBYTES,
)
assert bindings.crypto_aead_aegis128l_ABYTES == TAG_BYTES


def new_buffer(size: int) -> memoryview:
    """`size` writable bytes, not cleared: every one is written before it is read."""
    return memoryview(ffi.buffer(_uninitialised("unsigned char[]", max(size, 1)), size))


def seal(payload: Buffer, nonce: bytes, key: bytes, aegis: Aegis = AEGIS_256) -> memoryview:
    """`payload` encrypted and tagged, in a new buffer of its length plus `TAG_BYTES`."""
    aegis.check(nonce, key)
    size = len(payload)
    out = new_buffer(size + TAG_BYTES)
    written = ffi.new("unsigned long long *")
    status = aegis.encrypt(
        _pointer(out), written, _pointer(payload), size, ffi.NULL, 0, ffi.NULL, nonce, key
    )
    if status != 0 or written[0] != len(out):
        raise WireError("a frame could not be sealed")
    return out


def open_sealed(frame: Buffer, nonce: bytes, key: bytes, aegis: Aegis = AEGIS_256) -> memoryview:
    """The payload of a sealed `frame`, opened in place when the frame's memory is
    writable (the frame is spent either way); `WireError` if it fails its tag."""
    aegis.check(nonce, key)
    size = len(frame) - TAG_BYTES
    if size < 0:
        raise WireError("a frame failed authentication")
    view = memoryview(frame)
    out = view if not view.readonly else new_buffer(size)
    written = ffi.new("unsigned long long *")
    status = aegis.decrypt(
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
