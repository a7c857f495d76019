"""A pack back from k good shares: its data shares joined, or a decode of others.

zfec is systematic: share i < k is the i-th of the k equal parts of the padded
pack. When all k data shares came, the pack is their join, cut at its length:
one copy, no decoding, and no hash over the whole pack, since each of them
matched the Merkle root the owner signed over the shares it cut from that very
pack. A pack rebuilt from any other share goes through zfec's decode and must
hash to its id as well: a decode is where a mismatched set would show.
"""

from __future__ import annotations

from collections.abc import Mapping

from p2pbackup.codec.erasure import LATEST_TREE, decode_pack, share_size
from p2pbackup.codec.packs import pack_matches


def has_data_shares(shares: Mapping[int, bytes], k: int) -> bool:
    return all(index in shares for index in range(k))


def join_data_shares(shares: Mapping[int, bytes], k: int, length: int) -> bytes | None:
    """The pack from data shares 0..k-1 (checked already), or None if one has the wrong
    size for a pack of `length` bytes."""
    size = share_size(length, k)
    parts: list[memoryview] = []
    for index in range(k):
        share = shares[index]
        if len(share) != size:
            return None
        take = min(size, max(0, length - index * size))
        parts.append(memoryview(share)[:take])
    return b"".join(parts)


def rebuild_pack(
    shares: Mapping[int, bytes],
    pack_id: bytes,
    k: int,
    n: int,
    length: int,
    version: int = LATEST_TREE,
) -> bytes | None:
    """The pack from k or more checked shares of one set, or None when what they
    rebuild is not the pack named `pack_id` (named under descriptor `version`'s hash).
    Raises `ErasureError` on too few."""
    if has_data_shares(shares, k):
        joined = join_data_shares(shares, k, length)
        if joined is not None:
            return joined
    data = decode_pack(shares, k, n, length)
    return data if pack_matches(pack_id, data, version) else None
