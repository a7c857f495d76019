"""A share file that describes itself: a small header before the share's bytes holds
its owner's signed descriptor, its lease and when it was stored, so a file whose
index row a crash lost can be checked and indexed again instead of deleted.

The header is `MAGIC`, a 4-byte big-endian length, then canonical CBOR of
{"d": descriptor, "l": lease expiry, "t": stored at}. The row records the header's
length (0 for a file written before headers), so reading a held share never parses
it: only recovery does, and it trusts nothing it finds there until the owner's
signature and the share's Merkle root check out (see `verified`).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import cbor2

from p2pbackup.codec.descriptor import MAX_DESCRIPTOR_BYTES, ShareDescriptor
from p2pbackup.errors import WireError
from p2pbackup.store.contract import ShareKey, StoredShare

MAGIC = b"p2pshr1\n"
_LENGTH = struct.Struct(">I")
_PREFIX = len(MAGIC) + _LENGTH.size
# A descriptor plus two 64-bit integers and the map's keys fit well within this.
MAX_HEADER_BYTES = MAX_DESCRIPTOR_BYTES + 64


def header(share: StoredShare) -> bytes:
    """The bytes written before `share.data` in its file."""
    body = cbor2.dumps(
        {"d": share.descriptor, "l": share.lease_expiry, "t": share.stored_at}, canonical=True
    )
    return MAGIC + _LENGTH.pack(len(body)) + body


class Found(NamedTuple):
    """A share file that verified: the share, its Merkle root and its header's length."""

    share: StoredShare
    root: bytes
    header_bytes: int


def verified(key: ShareKey, blob: bytes) -> Found | None:
    """The share a file holds if its header parses and the descriptor it carries is
    signed by the key's owner, names this pack and has this share's Merkle root;
    None for anything else (a headerless, torn, foreign or rotted file)."""
    parsed = _parse(blob)
    if parsed is None:
        return None
    descriptor_bytes, lease, stored_at, size = parsed
    data = blob[size:]
    try:
        descriptor = ShareDescriptor.from_bytes(descriptor_bytes)
    except WireError:
        return None
    if (descriptor.owner, descriptor.pack_id) != (key.owner, key.pack_id):
        return None
    if not descriptor.check_share(key.idx, data) or not descriptor.verify():
        return None
    share = StoredShare(key.pack_id, key.idx, data, descriptor_bytes, key.owner, lease, stored_at)
    return Found(share, descriptor.roots[key.idx], size)


def _parse(blob: bytes) -> tuple[bytes, int, int, int] | None:
    """(descriptor, lease, stored at, header length) of a well-formed header, else None."""
    if len(blob) < _PREFIX or not blob.startswith(MAGIC):
        return None
    (length,) = _LENGTH.unpack_from(blob, len(MAGIC))
    if length > MAX_HEADER_BYTES or len(blob) < _PREFIX + length:
        return None
    try:
        fields = cbor2.loads(blob[_PREFIX : _PREFIX + length])
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError, OverflowError):
        return None
    if not isinstance(fields, dict):
        return None
    descriptor, lease, stored_at = fields.get("d"), fields.get("l"), fields.get("t")
    if not isinstance(descriptor, bytes):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lease, stored_at)):
        return None
    assert isinstance(lease, int) and isinstance(stored_at, int)
    if not all(-(2**63) <= v < 2**63 for v in (lease, stored_at)):
        return None
    return descriptor, lease, stored_at, _PREFIX + length
