"""Property tests for the length-prefixed frame codec."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.errors import WireError
from p2pbackup.wire.frames import PREFIX, FrameDecoder, encode_frame

MAX = 512

payloads = st.lists(st.binary(max_size=MAX), max_size=20)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut `data` at the given (clamped, sorted) offsets."""
    points = sorted({min(c, len(data)) for c in cuts})
    chunks, start = [], 0
    for p in points:
        chunks.append(data[start:p])
        start = p
    chunks.append(data[start:])
    return chunks


def _drain(decoder: FrameDecoder) -> list[bytes]:
    out: list[bytes] = []
    while (frame := decoder.next_frame()) is not None:
        out.append(bytes(frame))
    return out


@given(payloads, st.lists(st.integers(min_value=0, max_value=20 * (MAX + 4)), max_size=30))
def test_round_trip_with_arbitrary_splits(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(p, MAX) for p in frames)
    decoder = FrameDecoder(MAX)
    got: list[bytes] = []
    for chunk in _split(stream, cuts):
        decoder.feed(chunk)
        got.extend(_drain(decoder))
    assert got == frames
    assert decoder.buffered == 0
    assert decoder.next_frame() is None


@given(payloads, st.integers(min_value=1, max_value=7))
def test_round_trip_byte_by_byte_and_bytearray(frames: list[bytes], step: int) -> None:
    stream = b"".join(encode_frame(p, MAX) for p in frames)
    decoder = FrameDecoder(MAX)
    got: list[bytes] = []
    for i in range(0, len(stream), step):
        decoder.feed(bytearray(stream[i : i + step]))
        got.extend(_drain(decoder))
    assert got == frames
    assert all(type(f) is bytes for f in got)


@given(st.binary(max_size=MAX))
def test_encoding_is_prefix_plus_payload(payload: bytes) -> None:
    encoded = encode_frame(payload, MAX)
    assert encoded[: PREFIX.size] == struct.pack(">I", len(payload))
    assert encoded[PREFIX.size :] == payload


@given(st.integers(min_value=0, max_value=64), st.integers(min_value=1, max_value=64))
def test_encode_refuses_oversize_payload(limit: int, extra: int) -> None:
    with pytest.raises(WireError):
        encode_frame(b"x" * (limit + extra), limit)
    # exactly at the limit is fine
    assert len(encode_frame(b"x" * limit, limit)) == limit + PREFIX.size


@given(
    st.integers(min_value=0, max_value=4096),
    st.integers(min_value=1, max_value=2**32 - 1),
    st.binary(max_size=16),
)
def test_oversize_prefix_raises_before_body(limit: int, over: int, body_start: bytes) -> None:
    length = min(limit + over, 2**32 - 1)
    decoder = FrameDecoder(limit)
    decoder.feed(struct.pack(">I", length) + body_start)
    with pytest.raises(WireError):
        decoder.next_frame()


@given(payloads, st.integers(min_value=1, max_value=2**20))
def test_oversize_prefix_after_valid_frames(frames: list[bytes], over: int) -> None:
    decoder = FrameDecoder(MAX)
    decoder.feed(b"".join(encode_frame(p, MAX) for p in frames))
    decoder.feed(struct.pack(">I", MAX + over))
    assert _drain_until_error(decoder) == frames


def _drain_until_error(decoder: FrameDecoder) -> list[bytes]:
    out: list[bytes] = []
    while True:
        try:
            frame = decoder.next_frame()
        except WireError:
            return out
        assert frame is not None, "decoder stalled instead of refusing the oversize prefix"
        out.append(bytes(frame))


@given(st.binary(max_size=MAX), st.data())
def test_truncated_frame_yields_none(payload: bytes, data: st.DataObject) -> None:
    encoded = encode_frame(payload, MAX)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    decoder = FrameDecoder(MAX)
    decoder.feed(encoded[:cut])
    assert decoder.next_frame() is None
    assert decoder.next_frame() is None  # asking again changes nothing
    assert decoder.buffered == cut
    decoder.feed(encoded[cut:])
    assert decoder.next_frame() == payload
    assert decoder.next_frame() is None


@given(st.lists(st.binary(max_size=64), max_size=30), st.integers(min_value=0, max_value=128))
def test_garbage_only_raises_wire_error(chunks: list[bytes], limit: int) -> None:
    decoder = FrameDecoder(limit)
    for chunk in chunks:
        decoder.feed(chunk)
        try:
            while (frame := decoder.next_frame()) is not None:
                assert len(frame) <= limit
        except WireError:
            return


@settings(max_examples=50)
@given(st.binary(min_size=4, max_size=64))
def test_garbage_frames_never_exceed_limit_or_buffer(garbage: bytes) -> None:
    limit = 16
    decoder = FrameDecoder(limit)
    decoder.feed(garbage)
    consumed = 0
    try:
        while (frame := decoder.next_frame()) is not None:
            assert len(frame) <= limit
            assert garbage[consumed + 4 : consumed + 4 + len(frame)] == frame
            consumed += 4 + len(frame)
    except WireError:
        (length,) = struct.unpack_from(">I", garbage, consumed)
        assert length > limit
        return
    assert decoder.buffered == len(garbage) - consumed


@given(payloads, st.lists(st.integers(min_value=0, max_value=20 * (MAX + 4)), max_size=30))
def test_gathered_frames_come_whole_whatever_the_splits(
    frames: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(p, MAX) for p in frames)
    decoder = FrameDecoder(MAX, gather_from=8)
    got: list[bytes] = []
    for chunk in _split(stream, cuts):
        decoder.feed(chunk)
        while (frame := decoder.next_frame()) is not None:
            assert decoder.holding >= decoder.buffered
            got.append(bytes(frame))
    assert got == frames
    assert decoder.buffered == decoder.holding == 0


def test_a_big_frame_is_gathered_in_a_buffer_of_its_own() -> None:
    decoder = FrameDecoder(MAX, gather_from=100)
    body = bytes(range(200))
    decoder.feed(encode_frame(body, MAX)[:50])
    assert decoder.buffered == 50 and decoder.holding == PREFIX.size + 200  # counted whole
    decoder.feed(encode_frame(body, MAX)[50:] + encode_frame(b"next", MAX))
    frame = decoder.next_frame()
    assert isinstance(frame, memoryview) and frame == body
    assert decoder.next_frame() == b"next"


def test_a_reader_fills_a_gathered_frame_itself() -> None:
    decoder = FrameDecoder(MAX)
    decoder.feed(encode_frame(b"abcdefgh", MAX)[:6])
    decoder.gather(memoryview(bytearray(8)))
    assert decoder.next_frame() is None
    room = decoder.unfilled()
    room[:6] = b"cdefgh"
    decoder.filled(6)
    assert decoder.next_frame() == b"abcdefgh"
    with pytest.raises(ValueError):
        decoder.filled(1)  # nothing is being gathered


def test_filling_past_a_gathered_frame_is_refused() -> None:
    decoder = FrameDecoder(MAX)
    decoder.feed(encode_frame(b"abcd", MAX)[:5])
    decoder.gather(memoryview(bytearray(4)))
    with pytest.raises(ValueError):
        decoder.filled(4)  # 3 bytes were left


@given(st.integers(min_value=MAX + 1, max_value=2**32 - 1))
def test_an_oversize_frame_is_refused_before_any_gathering(length: int) -> None:
    decoder = FrameDecoder(MAX, gather_from=1)
    with pytest.raises(WireError):
        decoder.feed(struct.pack(">I", length))
    assert decoder.holding == PREFIX.size
