"""CBOR maps carrying big byte strings (shares, packs), written with one copy of them.

cbor2 copied a share into its output about four times on its way out, and every
share of a backup and every pack between a peer and its engine crosses an encoder.
"""

from __future__ import annotations

from typing import Any

import cbor2

# A byte string at least this long is joined into the encoding as it is.
SPLICE_FROM = 64 * 1024
_MAP_SMALL = 0xA0  # a CBOR map header holding its count, for fewer than 24 entries


def dumps_map(body: dict[str, Any]) -> bytes:
    """`cbor2.dumps(body)`, byte for byte, with each big byte string copied only once."""
    if len(body) >= 24 or not any(_big(value) for value in body.values()):
        return cbor2.dumps(body)
    parts = [bytes([_MAP_SMALL + len(body)])]
    for key, value in body.items():
        parts.append(cbor2.dumps(key))
        if _big(value):
            parts += [_bytes_head(len(value)), value]
        else:
            parts.append(cbor2.dumps(value))
    return b"".join(parts)


def _big(value: object) -> bool:
    return isinstance(value, bytes) and len(value) >= SPLICE_FROM


def _bytes_head(length: int) -> bytes:
    """The head of a CBOR byte string of `length` (>= 2**16) bytes, in its shortest form."""
    if length < 1 << 32:
        return b"\x5a" + length.to_bytes(4, "big")
    return b"\x5b" + length.to_bytes(8, "big")
