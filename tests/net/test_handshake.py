"""The handshake without sockets: who can prove what, and what the channel refuses."""

from __future__ import annotations

import cbor2
import pytest

from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import HandshakeError, WireError
from p2pbackup.net.handshake import Established, Handshake


def run(initiator: Handshake, responder: Handshake) -> tuple[Established, Established]:
    proof_i = initiator.receive_hello(responder.hello())
    proof_r = responder.receive_hello(initiator.hello())
    return initiator.receive_auth(proof_r), responder.receive_auth(proof_i)


def pair(**kwargs: object) -> tuple[Identity, Identity, Handshake, Handshake]:
    alice, bob = Identity.generate(), Identity.generate()
    return (
        alice,
        bob,
        Handshake(alice, initiator=True, listen=("127.0.0.1", 4000), **kwargs),  # type: ignore[arg-type]
        Handshake(bob, initiator=False, listen=("127.0.0.1", 5000)),
    )


def test_both_sides_learn_the_proven_identity_and_can_talk() -> None:
    alice, bob, a, b = pair()
    at_alice, at_bob = run(a, b)
    assert at_alice.remote.node_id == bob.node_id
    assert at_bob.remote.node_id == alice.node_id
    assert at_bob.remote.listen == ("127.0.0.1", 4000)
    for n in range(3):
        assert at_bob.channel.open(at_alice.channel.seal(b"ping %d" % n)) == b"ping %d" % n
        assert at_alice.channel.open(at_bob.channel.seal(b"pong %d" % n)) == b"pong %d" % n


def test_the_dialled_peer_must_be_the_expected_one() -> None:
    _, bob, a, b = pair(expected_node_id=Identity.generate().node_id)
    with pytest.raises(HandshakeError, match="expected peer"):
        a.receive_hello(b.hello())
    _, bob, a, b = pair()
    a.expected_node_id = bob.node_id
    run(a, b)


def test_a_relayed_hello_with_swapped_ephemeral_key_fails_the_proof() -> None:
    """A man in the middle who replaces the ephemeral key cannot make either proof verify."""
    _, _, a, b = pair()
    mallory = Handshake(Identity.generate(), initiator=False, listen=None)
    forged = cbor2.loads(b.hello())
    forged["eph"] = cbor2.loads(mallory.hello())["eph"]
    proof_i = a.receive_hello(cbor2.dumps(forged))
    proof_r = b.receive_hello(a.hello())
    with pytest.raises(HandshakeError, match="could not prove"):
        a.receive_auth(proof_r)
    with pytest.raises(HandshakeError, match="could not prove"):
        b.receive_auth(proof_i)


def test_a_proof_from_an_old_session_does_not_verify() -> None:
    alice, bob, a, b = pair()
    old_proof = b.receive_hello(a.hello())
    a2 = Handshake(alice, initiator=True, listen=None)
    b2 = Handshake(bob, initiator=False, listen=None)
    a2.receive_hello(b2.hello())
    with pytest.raises(HandshakeError):
        a2.receive_auth(old_proof)


def test_the_channel_refuses_tampered_replayed_and_reordered_frames() -> None:
    _, _, a, b = pair()
    at_alice, at_bob = run(a, b)
    first, second = at_alice.channel.seal(b"one"), at_alice.channel.seal(b"two")
    tampered = bytearray(first)
    tampered[-1] ^= 1
    with pytest.raises(WireError):
        at_bob.channel.open(bytes(tampered))
    _, _, a, b = pair()
    at_alice, at_bob = run(a, b)
    first, second = at_alice.channel.seal(b"one"), at_alice.channel.seal(b"two")
    with pytest.raises(WireError):
        at_bob.channel.open(second)  # out of order
    _, _, a, b = pair()
    at_alice, at_bob = run(a, b)
    first = at_alice.channel.seal(b"one")
    assert at_bob.channel.open(first) == b"one"
    with pytest.raises(WireError):
        at_bob.channel.open(first)  # replayed


@pytest.mark.parametrize(
    "hello",
    [
        b"\xff\x00garbage",
        cbor2.dumps([1, 2]),
        cbor2.dumps({"v": 1}),
        cbor2.dumps({"v": 9, "pk": b"\0" * 32, "eph": b"\0" * 32, "listen": None}),
        cbor2.dumps({"v": 1, "pk": b"\0" * 31, "eph": b"\0" * 32, "listen": None}),
        cbor2.dumps({"v": 1, "pk": b"\0" * 32, "eph": b"\0" * 32, "listen": ["h", 0]}),
        cbor2.dumps({"v": 1, "pk": b"\0" * 32, "eph": b"\0" * 32, "listen": None, "x": 1}),
    ],
)
def test_malformed_hellos_raise_only_handshake_errors(hello: bytes) -> None:
    _, _, a, _ = pair()
    with pytest.raises(HandshakeError):
        a.receive_hello(hello)


def test_our_own_key_presented_back_is_refused() -> None:
    alice = Identity.generate()
    a = Handshake(alice, initiator=True, listen=None)
    mirror = Handshake(alice, initiator=False, listen=None)
    with pytest.raises(HandshakeError, match="our own identity"):
        a.receive_hello(mirror.hello())
