"""The handshake without sockets: who can prove what, and what the channel refuses."""

from __future__ import annotations

import cbor2
import pytest
from nacl import bindings

from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import HandshakeError, WireError
from p2pbackup.net import handshake
from p2pbackup.net.handshake import (
    AEGIS128L,
    AEGIS256,
    SECRETSTREAM,
    AegisChannel,
    Established,
    Handshake,
    SecretStreamChannel,
    SecureChannel,
)


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


def both_offering(*ciphers: str) -> tuple[Handshake, Handshake]:
    a = Handshake(Identity.generate(), initiator=True, listen=None, ciphers=ciphers)
    b = Handshake(Identity.generate(), initiator=False, listen=None, ciphers=ciphers)
    return a, b


@pytest.mark.parametrize("cipher", [AEGIS128L, AEGIS256, SECRETSTREAM])
def test_the_channel_refuses_tampered_replayed_and_reordered_frames(cipher: str) -> None:
    at_alice, at_bob = run(*both_offering(cipher))
    first, second = at_alice.channel.seal(b"one"), at_alice.channel.seal(b"two")
    tampered = bytearray(first)
    tampered[-1] ^= 1
    with pytest.raises(WireError):
        at_bob.channel.open(bytes(tampered))
    at_alice, at_bob = run(*both_offering(cipher))
    first, second = at_alice.channel.seal(b"one"), at_alice.channel.seal(b"two")
    with pytest.raises(WireError):
        at_bob.channel.open(second)  # out of order
    at_alice, at_bob = run(*both_offering(cipher))
    first = at_alice.channel.seal(b"one")
    assert at_bob.channel.open(first) == b"one"
    with pytest.raises(WireError):
        at_bob.channel.open(first)  # replayed
    with pytest.raises(WireError):
        at_bob.channel.open(first[:5])  # shorter than a tag
    # A frame sealed the other way round does not open as one of ours.
    with pytest.raises(WireError):
        at_alice.channel.open(at_alice.channel.seal(b"three"))


@pytest.mark.parametrize("cipher", [AEGIS128L, AEGIS256, SECRETSTREAM])
def test_frames_of_any_size_cross_in_order(cipher: str) -> None:
    at_alice, at_bob = run(*both_offering(cipher))
    for payload in (b"", b"x", bytes(range(256)) * 5470):  # up to a share's size
        assert at_bob.channel.open(at_alice.channel.seal(payload)) == payload
        assert at_alice.channel.open(at_bob.channel.seal(payload)) == payload


def cipher_of(channel: SecureChannel) -> str:
    if isinstance(channel, AegisChannel):
        return {"AEGIS-256": AEGIS256, "AEGIS-128L": AEGIS128L}[channel.aegis.name]
    assert isinstance(channel, SecretStreamChannel)
    return SECRETSTREAM


EVERY = (AEGIS128L, AEGIS256, SECRETSTREAM)
BEFORE_128L = (AEGIS256, SECRETSTREAM)  # what a peer of an earlier release offers


@pytest.mark.parametrize(
    ("initiator", "responder", "chosen"),
    [
        (EVERY, EVERY, AEGIS128L),
        (EVERY, BEFORE_128L, AEGIS256),
        (BEFORE_128L, EVERY, AEGIS256),
        ((AEGIS256, SECRETSTREAM), (AEGIS256, SECRETSTREAM), AEGIS256),
        ((AEGIS256, SECRETSTREAM), (SECRETSTREAM,), SECRETSTREAM),
        ((SECRETSTREAM,), (AEGIS256, SECRETSTREAM), SECRETSTREAM),
        ((SECRETSTREAM, AEGIS256), (AEGIS256, SECRETSTREAM), SECRETSTREAM),
        (("rot13", AEGIS256), (AEGIS256, "rot13"), AEGIS256),
    ],
)
def test_both_sides_pick_the_initiators_first_cipher_in_common(
    initiator: tuple[str, ...], responder: tuple[str, ...], chosen: str
) -> None:
    a = Handshake(Identity.generate(), initiator=True, listen=None, ciphers=initiator)
    b = Handshake(Identity.generate(), initiator=False, listen=None, ciphers=responder)
    at_a, at_b = run(a, b)
    assert cipher_of(at_a.channel) == chosen and cipher_of(at_b.channel) == chosen
    assert at_b.channel.open(at_a.channel.seal(b"hello")) == b"hello"


def test_with_aes_in_hardware_aegis_128l_is_offered_first() -> None:
    if handshake.offered_ciphers() == (SECRETSTREAM,):
        pytest.skip("this CPU runs no AES in hardware: only secretstream is offered")
    assert handshake.offered_ciphers() == EVERY
    at_a, at_b = run(*pair()[2:])
    assert cipher_of(at_a.channel) == AEGIS128L == cipher_of(at_b.channel)


def test_an_aegis_256_channel_seals_as_before_aegis_128l() -> None:
    # Nonce = the 24-byte header and a little-endian frame counter; key = the session key.
    tx = bytes(range(32))
    channel = AegisChannel(tx, bytes(32))
    for counter in range(2):
        nonce = channel.header + counter.to_bytes(8, "little")
        expected = bindings.crypto_aead_aegis256_encrypt(b"frame", None, nonce, tx)
        assert bytes(channel.seal(b"frame")) == expected


def test_no_cipher_in_common_is_refused() -> None:
    a = Handshake(Identity.generate(), initiator=True, listen=None, ciphers=(AEGIS256,))
    b = Handshake(Identity.generate(), initiator=False, listen=None, ciphers=(SECRETSTREAM,))
    with pytest.raises(HandshakeError, match="no channel cipher in common"):
        a.receive_hello(b.hello())
    with pytest.raises(HandshakeError, match="no channel cipher in common"):
        b.receive_hello(a.hello())


def test_a_relayed_hello_stripped_of_a_cipher_fails_the_proof() -> None:
    """A man in the middle cannot talk both sides down to a cipher they would not pick."""
    a, b = both_offering(AEGIS256, SECRETSTREAM)
    downgraded = cbor2.loads(a.hello())
    downgraded["ciphers"] = [SECRETSTREAM]
    proof_r = b.receive_hello(cbor2.dumps(downgraded))
    a.receive_hello(b.hello())
    with pytest.raises(HandshakeError, match="could not prove"):
        a.receive_auth(proof_r)


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
        cbor2.dumps({"v": 2, "pk": b"\0" * 32, "eph": b"\0" * 32, "listen": None, "ciphers": [1]}),
        cbor2.dumps(
            {"v": 2, "pk": b"\0" * 32, "eph": b"\0" * 32, "listen": None, "ciphers": "aegis"}
        ),
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


def test_without_aes_in_hardware_only_secretstream_is_offered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert handshake.offered_ciphers()[-1] == SECRETSTREAM

    def unavailable(*args: object) -> bytes:
        raise RuntimeError("Construction not available on this CPU")

    monkeypatch.setattr(handshake.bindings, "crypto_aead_aes256gcm_encrypt", unavailable)
    assert handshake.offered_ciphers() == (SECRETSTREAM,)
    a = Handshake(
        Identity.generate(), initiator=True, listen=None, ciphers=(AEGIS256, SECRETSTREAM)
    )
    b = Handshake(Identity.generate(), initiator=False, listen=None)
    at_a, _ = run(a, b)
    assert isinstance(at_a.channel, SecretStreamChannel)
