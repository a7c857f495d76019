"""Property tests for typed messages and their CBOR encoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import p2pbackup.dht.messages as dht
import p2pbackup.wire.common as common
from p2pbackup.crypto.identity import NODE_ID_BYTES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from p2pbackup.dht.records import MAX_NAME, Record, RecordKind, SignedEntry
from p2pbackup.errors import WireError
from p2pbackup.net.contact import Contact
from p2pbackup.wire.messages import (
    REQUEST_ID_MAX,
    Message,
    MessageType,
    decode_message,
    encode_message,
    register,
    registered_types,
)

# --- strategies for valid messages -------------------------------------------------

request_ids = st.integers(min_value=0, max_value=REQUEST_ID_MAX)
node_ids = st.binary(min_size=NODE_ID_BYTES, max_size=NODE_ID_BYTES)
contacts = st.builds(
    Contact,
    node_id=node_ids,
    host=st.text(max_size=253),
    port=st.integers(min_value=0, max_value=65535),
)
contact_lists = st.lists(contacts, max_size=dht.MAX_CONTACTS).map(tuple)
entries = st.builds(
    SignedEntry,
    seq=st.integers(min_value=0, max_value=2**63 - 1),
    value=st.binary(max_size=256),
    signature=st.binary(min_size=SIGNATURE_BYTES, max_size=SIGNATURE_BYTES),
)
records = st.builds(
    Record,
    owner=st.binary(min_size=PUBLIC_KEY_BYTES, max_size=PUBLIC_KEY_BYTES),
    name=st.binary(max_size=MAX_NAME),
    kind=st.sampled_from(RecordKind),
    entries=st.lists(entries, max_size=8).map(tuple),
)

MESSAGES: dict[str, st.SearchStrategy[Message]] = {
    MessageType.PING.value: st.just(dht.Ping()),
    MessageType.PONG.value: st.just(dht.Pong()),
    MessageType.FIND_NODE.value: st.builds(dht.FindNode, target=node_ids),
    MessageType.NODES.value: st.builds(dht.Nodes, contacts=contact_lists),
    MessageType.ANNOUNCE.value: st.builds(dht.Announce, contact=contacts),
    MessageType.STORE_RECORD.value: st.builds(dht.StoreRecord, record=records),
    MessageType.STORED.value: st.builds(dht.Stored, ok=st.booleans(), reason=st.text(max_size=500)),
    MessageType.GET_RECORD.value: st.builds(dht.GetRecord, key=node_ids),
    MessageType.RECORD.value: st.builds(
        dht.RecordReply, record=st.none() | records, contacts=contact_lists
    ),
    MessageType.ERROR.value: st.builds(common.ErrorReply, reason=st.text(max_size=1000)),
}
messages = st.one_of(*MESSAGES.values())
FAST = settings(max_examples=60)

# --- strategies for arbitrary CBOR values ------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.binary(max_size=70)
    | st.sampled_from([cbor2.undefined, cbor2.CBORSimpleValue(99)])
)
keys = st.text(max_size=10) | st.integers(min_value=-5, max_value=5) | st.binary(max_size=4)
cbor_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(keys, inner, max_size=5)
        | st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 24, 258, 4242]), inner)
    ),
    max_leaves=15,
)


def _decode_only_wire_error(payload: bytes) -> tuple[int, Message] | None:
    """Decode; any exception other than WireError fails the test."""
    try:
        return decode_message(payload)
    except WireError:
        return None


def _wire_body(request_id: int, message: Message) -> dict[str, Any]:
    body: dict[str, Any] = cbor2.loads(encode_message(request_id, message))
    return body


# --- properties --------------------------------------------------------------------


def test_every_dht_and_common_message_has_a_strategy() -> None:
    declared = {
        obj.TYPE.value
        for module in (dht, common)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Message) and obj is not Message
    }
    assert declared == set(MESSAGES)
    assert declared <= registered_types()


@settings(max_examples=150)
@given(request_ids, messages)
def test_round_trip(request_id: int, message: Message) -> None:
    decoded_id, decoded = decode_message(encode_message(request_id, message))
    assert decoded_id == request_id
    assert type(decoded) is type(message)
    assert decoded == message


@pytest.mark.parametrize("kind", sorted(MESSAGES))
@settings(max_examples=30)
@given(data=st.data())
def test_round_trip_each_type(kind: str, data: st.DataObject) -> None:
    message = data.draw(MESSAGES[kind])
    request_id = data.draw(request_ids)
    assert decode_message(encode_message(request_id, message)) == (request_id, message)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_wire_error(payload: bytes) -> None:
    _decode_only_wire_error(payload)


@FAST
@given(request_ids, messages, st.binary(min_size=1, max_size=8), st.data())
def test_truncated_or_corrupted_message(
    request_id: int, message: Message, noise: bytes, data: st.DataObject
) -> None:
    payload = encode_message(request_id, message)
    cut = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    with pytest.raises(WireError):
        decode_message(payload[:cut])
    pos = data.draw(st.integers(min_value=0, max_value=len(payload)))
    _decode_only_wire_error(payload[:pos] + noise + payload[pos:])


@FAST
@given(cbor_values)
def test_arbitrary_cbor_only_wire_error(value: Any) -> None:
    result = _decode_only_wire_error(cbor2.dumps(value))
    if result is not None:  # only a map with a registered "t" and an "id" can pass
        assert isinstance(value, dict)
        assert value.get("t") in registered_types()


@FAST
@given(st.lists(cbor_values, max_size=4) | st.integers() | st.text() | st.binary() | st.none())
def test_non_map_refused(value: Any) -> None:
    with pytest.raises(WireError):
        decode_message(cbor2.dumps(value))


@FAST
@given(
    request_ids,
    messages,
    cbor_values.filter(lambda v: not (isinstance(v, str) and v in registered_types())),
)
def test_unknown_or_missing_type_refused(request_id: int, message: Message, t: Any) -> None:
    body = _wire_body(request_id, message)
    body["t"] = t
    with pytest.raises(WireError):
        decode_message(cbor2.dumps(body))
    del body["t"]
    with pytest.raises(WireError):
        decode_message(cbor2.dumps(body))


@FAST
@given(
    messages,
    st.integers(max_value=-1)
    | st.integers(min_value=REQUEST_ID_MAX + 1)
    | st.booleans()
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=5)
    | st.none(),
)
def test_bad_request_id_refused(message: Message, bad_id: Any) -> None:
    body = _wire_body(0, message)
    body["id"] = bad_id
    with pytest.raises(WireError):
        decode_message(cbor2.dumps(body))
    del body["id"]
    with pytest.raises(WireError):
        decode_message(cbor2.dumps(body))


@FAST
@given(request_ids, messages, st.data())
def test_missing_field_refused(request_id: int, message: Message, data: st.DataObject) -> None:
    body = _wire_body(request_id, message)
    fields = sorted(k for k in body if k not in ("t", "id"))
    if not fields:
        return
    del body[data.draw(st.sampled_from(fields))]
    with pytest.raises(WireError):
        decode_message(cbor2.dumps(body))


@FAST
@given(request_ids, messages, keys, cbor_values)
def test_extra_field_refused(request_id: int, message: Message, key: Any, value: Any) -> None:
    body = _wire_body(request_id, message)
    if key in body:
        return
    body[key] = value
    with pytest.raises(WireError):
        decode_message(cbor2.dumps(body))


# --- deep mutation: replace one node anywhere in a valid body ----------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], rest, new)
    return copy


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(request_ids, messages, cbor_values, st.data())
def test_mutated_body_decodes_consistently_or_wire_error(
    request_id: int, message: Message, new: Any, data: st.DataObject
) -> None:
    body = _wire_body(request_id, message)
    path = data.draw(st.sampled_from(_paths(body)))
    mutated = _replace(body, path, new)
    result = _decode_only_wire_error(cbor2.dumps(mutated))
    if result is None:
        return
    # whatever passed the schema must be a well-formed message that re-encodes stably
    decoded_id, decoded = result
    assert 0 <= decoded_id <= REQUEST_ID_MAX
    assert decode_message(encode_message(decoded_id, decoded)) == (decoded_id, decoded)


MISTYPED: dict[str, list[Any]] = {
    "target": [b"\x00" * (NODE_ID_BYTES - 1), b"\x00" * (NODE_ID_BYTES + 1), "x" * 20, 0, None],
    "key": [b"", b"\x00" * 21, [0] * 20, 1.5],
    "ok": [0, 1, "true", None, b"\x01"],
    "reason": [b"bytes", 3, None, "x" * 1001],
    "contacts": [
        None,
        {},
        [None],
        [{"id": b"\x00" * NODE_ID_BYTES, "host": "h"}],
        [{"id": b"\x00" * NODE_ID_BYTES, "host": "h", "port": 65536}],
        [{"id": b"\x00" * NODE_ID_BYTES, "host": "h", "port": -1}],
        [{"id": b"\x00" * NODE_ID_BYTES, "host": "h", "port": True}],
        [{"id": b"\x00" * NODE_ID_BYTES, "host": "h" * 254, "port": 1}],
        [{"id": b"\x00" * 19, "host": "h", "port": 1}],
        [{"id": b"\x00" * NODE_ID_BYTES, "host": b"h", "port": 1}],
        [{"id": b"\x00" * NODE_ID_BYTES, "host": "h", "port": 1, "x": 0}],
        [{"id": b"\x00" * NODE_ID_BYTES, "host": "h", "port": 1}] * (dht.MAX_CONTACTS + 1),
    ],
    "record": [
        [],
        7,
        {"owner": b"\x00" * 32, "name": b"n", "kind": 0},
        {"owner": b"\x00" * 31, "name": b"n", "kind": 0, "entries": []},
        {"owner": b"\x00" * 32, "name": b"n" * 65, "kind": 0, "entries": []},
        {"owner": b"\x00" * 32, "name": b"n", "kind": 2, "entries": []},
        {"owner": b"\x00" * 32, "name": b"n", "kind": False, "entries": []},
        {"owner": b"\x00" * 32, "name": "n", "kind": 0, "entries": []},
        {"owner": b"\x00" * 32, "name": b"n", "kind": 0, "entries": [[0, b"v"]]},
        {"owner": b"\x00" * 32, "name": b"n", "kind": 0, "entries": [[-1, b"v", b"s" * 64]]},
        {"owner": b"\x00" * 32, "name": b"n", "kind": 0, "entries": [[0, b"v", b"s" * 63]]},
        {"owner": b"\x00" * 32, "name": b"n", "kind": 0, "entries": [[0, "v", b"s" * 64]]},
        {"owner": b"\x00" * 32, "name": b"n", "kind": 0, "entries": [[2**63, b"v", b"s" * 64]]},
        {"owner": b"\x00" * 32, "name": b"n", "kind": 0, "entries": [(0, b"v", b"s" * 64, 0)]},
        {"owner": b"\x00" * 32, "name": b"n", "kind": 0, "entries": [], "extra": 1},
    ],
}


@FAST
@given(request_ids, messages, st.data())
def test_mistyped_field_refused(request_id: int, message: Message, data: st.DataObject) -> None:
    body = _wire_body(request_id, message)
    fields = sorted(k for k in body if k in MISTYPED)
    if not fields:
        return
    field = data.draw(st.sampled_from(fields))
    bad = data.draw(st.sampled_from(MISTYPED[field]))
    if field == "record" and body["t"] == MessageType.RECORD.value and bad is None:
        return  # a RecordReply may carry no record
    body[field] = bad
    with pytest.raises(WireError):
        decode_message(cbor2.dumps(body))


def test_a_field_without_a_check_is_refused_at_registration() -> None:
    @dataclass(frozen=True)
    class Unchecked(Message):
        TYPE = MessageType.PING

        target: bytes

    with pytest.raises(RuntimeError, match="needs one check"):
        register(Unchecked)
    with pytest.raises(RuntimeError, match="registered twice"):
        register(dht.Ping)
    assert decode_message(encode_message(1, dht.Ping())) == (1, dht.Ping())


def test_registration_reads_each_check_from_the_annotation() -> None:
    assert [name for name, _ in dht.RecordReply.WIRE_FIELDS] == ["record", "contacts"]
    assert list(dht.Stored.CHECKS) == ["ok", "reason"]
    with pytest.raises(WireError, match="expected 20 bytes"):
        dht.FindNode.CHECKS["target"](b"\x00")
