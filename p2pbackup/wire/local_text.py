"""CBOR between this program's own processes (the control socket, the engine pipe),
where text may be a file name that is not UTF-8.

Python holds such a name as a str with surrogate escapes (PEP 383: the byte 0xff
becomes U+DCFF), which CBOR text cannot carry: cbor2 refused it, so a listing, a
warning or a path argument naming such a file failed the command, and once ended
the peer. Such a string travels instead as its raw bytes under a tag of our own
and comes back the same string. The mesh's wire to other peers never uses this.
"""

from __future__ import annotations

from typing import Any

import cbor2

# A tag in CBOR's first-come range, meaningful only between our own processes.
RAW_TEXT_TAG = 55_383


def dumps(value: Any) -> bytes:
    """`cbor2.dumps(value)`; strings that are not UTF-8 go as tagged raw bytes."""
    try:
        return cbor2.dumps(value)
    except UnicodeEncodeError:
        return cbor2.dumps(tag_raw_text(value))


def loads(data: bytes | bytearray | memoryview) -> Any:
    return cbor2.loads(data, tag_hook=untag_raw_text)


def utf8(text: str) -> bool:
    """Whether CBOR text can carry `text` (no surrogate escapes of a non-UTF-8 name)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def tag_raw_text(value: Any) -> Any:
    """`value` with every string that UTF-8 cannot encode replaced by its tagged bytes,
    through maps, lists and tuples (the only containers our frames hold)."""
    if isinstance(value, str):
        if utf8(value):
            return value
        return cbor2.CBORTag(RAW_TEXT_TAG, value.encode("utf-8", "surrogateescape"))
    if isinstance(value, dict):
        return {tag_raw_text(k): tag_raw_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tag_raw_text(v) for v in value]
    return value


def untag_raw_text(tag: cbor2.CBORTag, immutable: bool) -> Any:
    """cbor2's tag hook: our raw text back to its string; any other tag as it came."""
    if tag.tag == RAW_TEXT_TAG and isinstance(tag.value, bytes):
        return tag.value.decode("utf-8", "surrogateescape")
    return tag
