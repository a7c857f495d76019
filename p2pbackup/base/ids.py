"""Ids and the XOR metric every layer measures closeness with.

Node ids and pack ids share one 160-bit space, so "the peers closest to a
pack" and "the contacts closest to a key" are the same computation.
"""

from __future__ import annotations

ID_BYTES = 20
NODE_ID_BYTES = ID_BYTES
PACK_ID_BYTES = ID_BYTES


def id_int(an_id: bytes) -> int:
    return int.from_bytes(an_id, "big")


def distance(a: bytes, b: bytes) -> int:
    """Kademlia's XOR distance between two ids (or an id and a key)."""
    return id_int(a) ^ id_int(b)
