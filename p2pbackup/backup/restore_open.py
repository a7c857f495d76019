"""Opening a fetched pack's file chunks for a restore: the pack is checked against
its id once, then each chunk is decrypted straight out of it (decision 0053).

Each blob is sealed with XChaCha20-Poly1305 under the owner's data key, so its
tag proves the bytes are a blob this owner sealed, unaltered. The pack's id is
a hash of its bytes (BLAKE3, or BLAKE2b for packs of version-1 descriptors), so
a pack that matches it holds exactly the blobs the owner packed there, each
where the owner's index says: a blob swapped in from elsewhere, authentic but
another chunk's, changes the pack's hash. That binds every chunk to its id as
the keyed hash of each chunk's content did, for a sixth of its cost on a big
file. The pack is checked here although a mesh store checks it too, so that no
byte reaches a file on the word of the store alone.

A chunk is decrypted from a view of the pack into a buffer of its own, which
is what gets written: no copy of the sealed blob, none of the plain bytes.
A pack's chunks are opened as soon as it comes, not when its turn to be
written does, so packs on their way are opened side by side.
"""

from __future__ import annotations

from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.snapshot import Locator
from p2pbackup.codec.chunker import is_zeros
from p2pbackup.codec.chunks import NONCE_BYTES, SEAL_OVERHEAD, TAG_BYTES, CorruptBlob, open_inner
from p2pbackup.codec.erasure import TREE_BLAKE2B, TREE_BLAKE3
from p2pbackup.codec.packs import pack_matches
from p2pbackup.crypto.in_place import xchacha_open_into
from p2pbackup.errors import P2PBackupError

_FLAG_RAW = 0


def pack_is_sound(pack_id: bytes, pack: bytes) -> bool:
    """Whether `pack` hashes to `pack_id` under either pack id hash. The descriptor
    that says which is not here, and a BLAKE3 pass costs a fraction of a BLAKE2b one,
    so BLAKE3 goes first; a pack of a version-1 descriptor pays for both."""
    return pack_matches(pack_id, pack, TREE_BLAKE3) or pack_matches(pack_id, pack, TREE_BLAKE2B)


def open_blob(data_key: bytes, pack: bytes, offset: int, length: int) -> bytes | bytearray:
    """The plain bytes of the sealed blob at `offset` in `pack` (a pack already checked
    against its id); raises `CorruptBlob` if it does not open under `data_key`."""
    if length < SEAL_OVERHEAD or offset < 0 or offset + length > len(pack):
        raise CorruptBlob(f"a blob of {length} bytes at {offset} lies outside its pack")
    sealed = memoryview(pack)[offset : offset + length]
    inner = bytearray(length - NONCE_BYTES - TAG_BYTES)
    opened = xchacha_open_into(inner, sealed[NONCE_BYTES:], sealed[:NONCE_BYTES], data_key)
    if not opened:
        raise CorruptBlob("sealed blob fails authentication (corrupted, or not this owner's)")
    if inner[0] != _FLAG_RAW:
        return open_inner(inner)
    del inner[:1]  # from the front of a bytearray: no bytes move
    return inner


Piece = tuple[int, bytes, Locator]  # (offset in the file, chunk id, where it lies)
# One file's chunks in one pack, opened: (offset, plain bytes or None for a hole, length)
# each, or why the file cannot be rebuilt from this pack.
Opened = list[tuple[int, bytes | bytearray | None, int]] | str


def open_pieces(
    codec: BlobCodec, pack_id: bytes, pack: bytes, files: list[list[Piece]]
) -> list[Opened]:
    """Open what each file has in `pack` (checked against its id already). This runs as
    soon as the pack comes, apart from the writes, which wait for the pack before it:
    so the packs on their way are opened side by side (the cipher lets go of the
    interpreter lock) and only the writes go one pack at a time."""
    return [_open_file(codec, pack_id, pack, pieces) for pieces in files]


def _open_file(codec: BlobCodec, pack_id: bytes, pack: bytes, pieces: list[Piece]) -> Opened:
    """A hole's chunk is known by its id once met: nothing to open. An all-zero chunk is
    also hashed, once per length, so the next one with its id is known without opening
    it; it is written as a hole."""
    opened: list[tuple[int, bytes | bytearray | None, int]] = []
    for offset, chunk_id, locator in pieces:
        length = codec.zero_length(chunk_id)
        if length is not None:
            opened.append((offset, None, length))
            continue
        try:
            plain = open_blob(codec.keys.data_key, pack, locator.offset, locator.length)
            zeros = is_zeros(plain)
            if zeros and codec.chunk_id(bytes(plain)) != chunk_id:
                raise CorruptBlob("blob content does not match its chunk id")
        except P2PBackupError as exc:
            return f"chunk {chunk_id.hex()[:12]} in pack {pack_id.hex()[:12]}: {exc}"
        opened.append((offset, None if zeros else plain, len(plain)))
    return opened
