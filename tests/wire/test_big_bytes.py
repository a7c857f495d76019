"""Big byte strings in messages: decoded exactly as cbor2 decodes them, from any
buffer, and refused as cbor2 refuses them when they do not fit the payload."""

from __future__ import annotations

import os
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import p2pbackup.shares.messages as sh
from p2pbackup.errors import WireError
from p2pbackup.wire.big_bytes import SPLICE_FROM, dumps_map, loads_map
from p2pbackup.wire.messages import decode_message

BIG = os.urandom(3 * SPLICE_FROM + 7)

values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.text(max_size=30),
    st.binary(max_size=64),
    st.sampled_from([BIG, BIG[:SPLICE_FROM], BIG[: SPLICE_FROM - 1], BIG[:70_000]]),
    st.lists(st.integers(), max_size=3),
    st.none(),
)
bodies = st.dictionaries(st.text(max_size=30), values, max_size=8)


@settings(max_examples=150, deadline=None)
@given(bodies, st.sampled_from([bytes, bytearray, memoryview]))
def test_decodes_as_cbor2_does_from_any_buffer(body: dict[str, Any], kind: type) -> None:
    payload = dumps_map(body)
    decoded = loads_map(kind(payload))
    assert decoded == cbor2.loads(payload) == body
    for value in decoded.values():
        if isinstance(value, bytes | bytearray | memoryview):
            assert type(value) is bytes  # a handler gets bytes, never a view of the frame


def test_a_map_with_keys_of_another_kind_is_decoded_whole() -> None:
    payload = cbor2.dumps({1: BIG, "a": b"x"})
    assert loads_map(payload) == {1: BIG, "a": b"x"}


def _share_last(data: bytes) -> bytes:
    """A share reply with its bytes last, as another encoder may order it: cut inside
    them, nothing after them would notice."""
    return dumps_map({"t": "share", "id": 7, "index": 1, "descriptor": b"d" * 40, "data": data})


@pytest.mark.parametrize("cut", [1, 5, 20, 60 + SPLICE_FROM, len(BIG) // 2, -1])
def test_a_cut_share_is_refused(cut: int) -> None:
    payload = _share_last(BIG)
    assert decode_message(memoryview(payload))[1] == sh.ShareData(1, b"d" * 40, BIG)
    with pytest.raises(WireError):
        decode_message(memoryview(payload)[:cut])


def test_a_length_past_the_payload_is_refused() -> None:
    payload = bytearray(_share_last(BIG))
    head = payload.index(b"\x5a" + len(BIG).to_bytes(4, "big"))
    payload[head + 1 : head + 5] = (len(BIG) + 1).to_bytes(4, "big")
    with pytest.raises(WireError):
        decode_message(payload)


def test_a_puts_share_stays_a_view_of_its_frame_and_nothing_else_does() -> None:
    """Decision 0076: a holder writes a share from the frame it came in; every other big
    byte string (a share served back, a proof's block) is copied out as before."""
    put = sh.PutShare(b"p" * 20, 1, b"d" * 40, BIG, prove_block=2)
    frame = bytearray(dumps_map({**put.to_wire(), "t": "put_share", "id": 3}))
    _, decoded = decode_message(memoryview(frame))
    assert isinstance(decoded, sh.PutShare) and decoded == put
    assert isinstance(decoded.data, memoryview) and decoded.data.readonly
    frame[frame.index(BIG[:64])] ^= 0xFF  # the frame's memory, not a copy of it
    assert decoded.data != BIG
    for other in (sh.ShareData(1, b"d" * 40, BIG), sh.ShareStored(BIG[:SPLICE_FROM], (b"h" * 32,))):
        payload = bytearray(dumps_map({**other.to_wire(), "t": other.TYPE.value, "id": 4}))
        _, decoded_other = decode_message(memoryview(payload))
        assert decoded_other == other
        assert all(type(v) is not memoryview for v in vars(decoded_other).values())


def test_views_are_asked_for() -> None:
    payload = dumps_map({"a": BIG, "b": b"x"})
    assert type(loads_map(payload)["a"]) is bytes
    viewed = loads_map(payload, views=True)
    assert isinstance(viewed["a"], memoryview) and viewed["a"].readonly
    assert viewed == {"a": BIG, "b": b"x"}
