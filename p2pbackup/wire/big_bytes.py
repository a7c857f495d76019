"""CBOR maps carrying big byte strings (shares, packs), each written and read with
one copy of it.

cbor2 copied a share into its output about four times on its way out, and read
it back growing its result 64 KiB at a time; every share of a backup and every
pack between a peer and its engine crosses an encoder and a decoder.
"""

from __future__ import annotations

import io
from typing import IO, Any, cast

import cbor2

# A byte string at least this long is joined into the encoding as it is.
SPLICE_FROM = 64 * 1024
_MAP_SMALL = 0xA0  # a CBOR map header holding its count, for fewer than 24 entries
_TEXT_SMALL = 0x60  # a text string holding its length, for fewer than 24 bytes
_BYTES_HEADS = {0x59: 2, 0x5A: 4, 0x5B: 8}  # byte string heads by the size of their length

Buffer = bytes | bytearray | memoryview


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


def loads_map(
    payload: Buffer, *, views: bool = False, tag_hook: cbor2.TagHook | None = None
) -> Any:
    """`cbor2.loads(payload)`, with each big byte string of a map of short text keys
    copied once straight out of `payload`; raises what cbor2 raises on garbage.

    With `views`, a big byte string comes back as a read-only view of `payload`
    instead, for a caller that decides which of them to keep uncopied. `tag_hook` is
    cbor2's, for the tags a caller's own frames carry."""
    view = memoryview(payload)
    if len(view) < SPLICE_FROM or not _MAP_SMALL <= view[0] < _MAP_SMALL + 24:
        return cbor2.loads(view, tag_hook=tag_hook)
    reader = _Reader(view, tag_hook)
    decoded: dict[str, Any] = {}
    for _ in range(view[0] - _MAP_SMALL):
        if not _TEXT_SMALL <= view[reader.at] < _TEXT_SMALL + 24:
            return cbor2.loads(view, tag_hook=tag_hook)  # keys of another kind: as a whole
        key = _decode_one(reader)
        decoded[key] = _value(view, reader, views)
    return decoded


def _value(view: memoryview, reader: _Reader, views: bool) -> Any:
    """The item at the reader's position: a big byte string sliced out (or a view of
    it), else decoded."""
    at = reader.at
    width = _BYTES_HEADS.get(view[at])
    if width is not None:
        start = at + 1 + width
        length = int.from_bytes(view[at + 1 : start], "big")
        if length >= SPLICE_FROM:
            if start + length > len(view):
                raise ValueError("a byte string runs past the end of the payload")
            reader.at = start + length
            found = view[start : start + length]
            return found.toreadonly() if views else bytes(found)
    return _decode_one(reader)


def _decode_one(reader: _Reader) -> Any:
    return cbor2.CBORDecoder(cast("IO[bytes]", reader), tag_hook=reader.tag_hook).decode()


class _Reader(io.RawIOBase):
    """A file over a memoryview for cbor2's decoder, which reads exactly what an item
    needs: where it stops is where the next item starts."""

    def __init__(self, view: memoryview, tag_hook: cbor2.TagHook | None) -> None:
        super().__init__()
        self._view = view
        self.tag_hook = tag_hook
        self.at = 1  # after the map's header

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self.at + size)
        out = bytes(self._view[self.at : end])
        self.at = end
        return out


def _big(value: object) -> bool:
    return isinstance(value, bytes) and len(value) >= SPLICE_FROM


def _bytes_head(length: int) -> bytes:
    """The head of a CBOR byte string of `length` (>= 2**16) bytes, in its shortest form."""
    if length < 1 << 32:
        return b"\x5a" + length.to_bytes(4, "big")
    return b"\x5b" + length.to_bytes(8, "big")
