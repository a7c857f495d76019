"""The exact bytes of one message of each kind, pinned.

Peers of different versions must keep understanding each other, so a change
to how messages are declared or encoded may not move a single byte.
"""

from __future__ import annotations

import pytest

import p2pbackup.dht.messages as dht
import p2pbackup.shares.messages as sh
import p2pbackup.shares.upkeep_messages as up
import p2pbackup.wire.common as common
from p2pbackup.dht.records import Record, RecordKind, SignedEntry
from p2pbackup.net.contact import Contact
from p2pbackup.wire.messages import Message, decode_message, encode_message, registered_types

C1 = Contact(bytes(range(20)), "10.0.0.1", 4001)
C2 = Contact(b"\xee" * 20, "peer.example", 65535)
REC = Record(
    b"\x01" * 32,
    b"snapshots",
    RecordKind.SET,
    (SignedEntry(0, b"a", b"\x02" * 64), SignedEntry(7, b"bc", b"\x03" * 64)),
)

PINNED: list[tuple[Message, str]] = [
    (dht.Ping(), "a261746470696e676269641903e8"),
    (dht.Pong(), "a2617464706f6e676269641903e9"),
    (
        dht.FindNode(b"\x11" * 20),
        "a36674617267657454111111111111111111111111111111111111111161746966696e645f6e6f64"
        "656269641903ea",
    ),
    (
        dht.Nodes((C1, C2)),
        "a368636f6e746163747382a362696454000102030405060708090a0b0c0d0e0f1011121364686f73"
        "746831302e302e302e3164706f7274190fa1a362696454eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
        "eeeeee64686f73746c706565722e6578616d706c6564706f727419ffff6174656e6f646573626964"
        "1903eb",
    ),
    (
        dht.StoreRecord(REC),
        "a3667265636f7264a4656f776e657258200101010101010101010101010101010101010101010101"
        "010101010101010101646e616d6549736e617073686f7473646b696e640167656e74726965738283"
        "00416158400202020202020202020202020202020202020202020202020202020202020202020202"
        "02020202020202020202020202020202020202020202020202020202028307426263584003030303"
        "03030303030303030303030303030303030303030303030303030303030303030303030303030303"
        "030303030303030303030303030303030303030361746c73746f72655f7265636f72646269641903"
        "ec",
    ),
    (dht.Stored(False, "full"), "a4626f6bf466726561736f6e6466756c6c61746673746f7265646269641903ed"),
    (
        dht.GetRecord(b"\x22" * 20),
        "a3636b657954222222222222222222222222222222222222222261746a6765745f7265636f726462"
        "69641903ee",
    ),
    (
        dht.RecordReply(REC, (C1,)),
        "a4667265636f7264a4656f776e657258200101010101010101010101010101010101010101010101"
        "010101010101010101646e616d6549736e617073686f7473646b696e640167656e74726965738283"
        "00416158400202020202020202020202020202020202020202020202020202020202020202020202"
        "02020202020202020202020202020202020202020202020202020202028307426263584003030303"
        "03030303030303030303030303030303030303030303030303030303030303030303030303030303"
        "030303030303030303030303030303030303030368636f6e746163747381a3626964540001020304"
        "05060708090a0b0c0d0e0f1011121364686f73746831302e302e302e3164706f7274190fa1617466"
        "7265636f72646269641903ef",
    ),
    (
        dht.RecordReply(None, ()),
        "a4667265636f7264f668636f6e7461637473806174667265636f72646269641903f0",
    ),
    (
        sh.PutShare(b"\x33" * 20, 3, b"desc", b"data" * 3),
        "a6677061636b5f696454333333333333333333333333333333333333333365696e646578036a6465"
        "7363726970746f72446465736364646174614c6461746164617461646174616174697075745f7368"
        "6172656269641903f1",
    ),
    (sh.ShareStored(), "a261746c73686172655f73746f7265646269641903f2"),
    (
        sh.GetShare(b"\x44" * 20),
        "a3677061636b5f69645444444444444444444444444444444444444444446174696765745f736861"
        "72656269641903f3",
    ),
    (
        sh.ShareData(254, b"d", b"x"),
        "a565696e64657818fe6a64657363726970746f7241646464617461417861746573686172656269641903f4",
    ),
    (sh.NoShare(), "a26174686e6f5f73686172656269641903f5"),
    (
        up.QueryShare(b"\x55" * 20),
        "a3677061636b5f696454555555555555555555555555555555555555555561746b71756572795f73"
        "686172656269641903f6",
    ),
    (
        up.ShareHeld(0, b"dd"),
        "a465696e646578006a64657363726970746f7242646461746a73686172655f68656c646269641903f7",
    ),
    (
        up.Audit(b"\x66" * 20, 5, 2**40),
        "a5677061636b5f696454666666666666666666666666666666666666666665696e6465780565626c"
        "6f636b1b000001000000000061746561756469746269641903f8",
    ),
    (
        up.AuditProof(b"blk", (b"\x77" * 32, b"\x88" * 32)),
        "a4646461746143626c6b6570726f6f66825820777777777777777777777777777777777777777777"
        "77777777777777777777775820888888888888888888888888888888888888888888888888888888"
        "888888888861746b61756469745f70726f6f666269641903f9",
    ),
    (
        up.RenewLease(b"\x99" * 20, b"desc2"),
        "a4677061636b5f69645499999999999999999999999999999999999999996a64657363726970746f"
        "7245646573633261746b72656e65775f6c656173656269641903fa",
    ),
    (
        up.LeaseRenewed(1 << 40),
        "a36c6c656173655f6578706972791b000001000000000061746d6c656173655f72656e6577656462"
        "69641903fb",
    ),
    (
        up.ReleaseShare(b"\xaa" * 20, b"\xbb" * 32, b"\xcc" * 64),
        "a5677061636b5f696454aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa656f776e65725820bbbb"
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb697369676e6174757265"
        "5840cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
        "cccccccccccccccccccccccccccccccccccccccccccccccccccc61746d72656c656173655f736861"
        "72656269641903fc",
    ),
    (up.ShareReleased(255), "a365636f756e7418ff61746e73686172655f72656c65617365646269641903fd"),
    (
        common.ErrorReply("refused: ünïcode"),
        "a366726561736f6e72726566757365643a20c3bc6ec3af636f64656174656572726f726269641903fe",
    ),
]


def test_every_registered_type_is_pinned() -> None:
    assert {message.TYPE.value for message, _ in PINNED} == registered_types()


@pytest.mark.parametrize(
    ("index", "message", "expected"), [(i, m, h) for i, (m, h) in enumerate(PINNED)]
)
def test_encoded_bytes_are_pinned(index: int, message: Message, expected: str) -> None:
    assert encode_message(1000 + index, message).hex() == expected


@pytest.mark.parametrize(
    ("index", "message", "expected"), [(i, m, h) for i, (m, h) in enumerate(PINNED)]
)
def test_pinned_bytes_decode_to_the_message(index: int, message: Message, expected: str) -> None:
    assert decode_message(bytes.fromhex(expected)) == (1000 + index, message)
