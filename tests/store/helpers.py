"""Helpers shared by the share-store tests."""

from __future__ import annotations

import hashlib

OWNER_A = b"A" * 32
OWNER_B = b"B" * 32


def pack(n: int) -> bytes:
    """A deterministic 20-byte pack id."""
    return hashlib.blake2b(n.to_bytes(8, "big"), digest_size=20).digest()
