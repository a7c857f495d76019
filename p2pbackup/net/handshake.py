"""The connection handshake and the encrypted channel after it, sans-IO.

Both sides send a hello at once (version, Ed25519 identity key, a fresh
X25519 key, the address they listen on and their other routes, the address
they see the other side at, the channel ciphers they offer).
Each then signs a digest of both hellos under its role and sends the
signature with its channel header. Signing both ephemeral keys binds the
session keys (crypto_kx) to the two identities: a man in the middle can
relay hellos but cannot sign for either side, and a replayed proof fails
against fresh ephemeral keys. The cipher lists are signed too, so no one
between can talk the two sides down to a cipher both would not pick.

With the proof each side sends the credential its `Gate` makes (a mesh
membership, or an invite), and checks the other's: a remote the gate
refuses is dropped before it can make any request.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cbor2
from nacl import bindings
from nacl.encoding import RawEncoder
from nacl.hash import blake2b
from nacl.utils import random as random_bytes

from p2pbackup.crypto import in_place as sealing
from p2pbackup.crypto.identity import (
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    Identity,
    node_id_from_public_key,
    verify_signature,
)
from p2pbackup.crypto.in_place import AEGIS_128L, AEGIS_256, Aegis, Buffer
from p2pbackup.errors import HandshakeError, WireError
from p2pbackup.net.contact import MAX_ROUTES, Route, parse_routes
from p2pbackup.net.transport import Address, Remote
from p2pbackup.wire.schema import (
    bytes_field,
    int_field,
    list_of,
    map_of,
    optional,
    str_field,
)

PROTOCOL_VERSION = 2
MAX_HANDSHAKE_FRAME = 4096
MAX_CREDENTIAL = 2048
_CONTEXT = b"p2pbackup handshake v2"
_HEADER_BYTES = bindings.crypto_secretstream_xchacha20poly1305_HEADERBYTES

SECRETSTREAM = "xchacha20poly1305-secretstream"
AEGIS256 = "aegis256"
AEGIS128L = "aegis128l"
_COUNTER_BYTES = 8  # a frame counter, the last bytes of an AEGIS nonce
# Whichever cipher a connection uses, a sealed frame is at most this much longer.
ABYTES = max(
    bindings.crypto_secretstream_xchacha20poly1305_ABYTES, bindings.crypto_aead_aegis256_ABYTES
)

_HELLO = map_of(
    {
        "v": int_field(1, 2**16),
        "pk": bytes_field(exact=PUBLIC_KEY_BYTES),
        "eph": bytes_field(exact=bindings.crypto_kx_PUBLIC_KEY_BYTES),
        "listen": optional(list_of(lambda v: v, 2)),
        "routes": list_of(str_field(300), MAX_ROUTES),
        "seen": optional(list_of(lambda v: v, 2)),
        "ciphers": list_of(str_field(64), 8),
    },
    optional_keys=frozenset({"routes", "seen"}),
)
_AUTH = map_of(
    {
        "sig": bytes_field(exact=SIGNATURE_BYTES),
        "hdr": bytes_field(exact=_HEADER_BYTES),
        "m": bytes_field(max_len=MAX_CREDENTIAL),
    },
    optional_keys=frozenset({"m"}),
)
_HOST = str_field(253)
_PORT = int_field(1, 65535)


def _loads(payload: bytes, check: Any, what: str) -> dict[str, Any]:
    try:
        value = cbor2.loads(payload)
    except Exception as exc:  # any garbage means the same: not a handshake
        raise HandshakeError(f"undecodable {what}: {type(exc).__name__}") from None
    try:
        checked: dict[str, Any] = check(value)
    except WireError as exc:
        raise HandshakeError(f"malformed {what}: {exc}") from None
    return checked


def _address_from_wire(value: list[Any] | None, what: str) -> Address | None:
    if value is None:
        return None
    if len(value) != 2:
        raise HandshakeError(f"malformed hello: {what} must be [host, port]")
    try:
        return _HOST(value[0]), _PORT(value[1])
    except WireError as exc:
        raise HandshakeError(f"malformed hello: {what} {exc}") from None


def _routes_from_wire(value: list[str] | None) -> tuple[Route, ...]:
    try:
        return parse_routes(value) if value else ()
    except WireError as exc:
        raise HandshakeError(f"malformed hello: {exc}") from None


class Gate(Protocol):
    """Who may talk to this peer at all, decided in the handshake before any request."""

    def credential(self, transcript: bytes) -> bytes | None:
        """What this peer shows the other side (bound to this handshake's transcript)."""
        ...

    def admit(self, public_key: bytes, credential: bytes | None, transcript: bytes) -> str:
        """The remote's standing ("member", "joiner", "open"); raises `HandshakeError`
        with a one-line reason to refuse it."""
        ...


class OpenGate:
    """An open mesh: everyone may talk, nobody shows anything."""

    def credential(self, transcript: bytes) -> bytes | None:
        return None

    def admit(self, public_key: bytes, credential: bytes | None, transcript: bytes) -> str:
        return "open"


OPEN_GATE = OpenGate()


def _aes_in_hardware() -> bool:
    """Whether this CPU runs AES in hardware: libsodium offers AES-256-GCM only then."""
    try:
        bindings.crypto_aead_aes256gcm_encrypt(b"", None, bytes(12), bytes(32))
    except Exception:  # nacl's EnsureError: "not available on this CPU"
        return False
    return True


def offered_ciphers() -> tuple[str, ...]:
    """This peer's channel ciphers, best first.

    AEGIS-256 seals a 1.4 MB share in 0.2 ms where secretstream takes 1.1 ms,
    but only with AES in hardware; without it, it is slower than ChaCha20.
    AEGIS-128L seals 660 MB of shares fresh from memory in 0.12 s where AEGIS-256
    takes 0.20 s (decision 0088); AEGIS-256 stays for peers that offer no more."""
    if not _aes_in_hardware():
        return (SECRETSTREAM,)
    return (AEGIS128L, AEGIS256, SECRETSTREAM)


def choose_cipher(initiator_offers: list[str], responder_offers: list[str]) -> str:
    """The first cipher the initiator offers that the responder offers too."""
    for cipher in initiator_offers:
        if cipher in responder_offers and cipher in CHANNELS:
            return cipher
    raise HandshakeError(
        f"no channel cipher in common (offered {initiator_offers}, {responder_offers})"
    )


class SecureChannel(Protocol):
    """Encrypts what we send and decrypts what we receive, one frame at a time.

    Each direction has its own key; a frame must arrive in the order it was
    sealed, so a forged, replayed, dropped-then-resent or reordered frame fails."""

    header: bytes  # sent in the proof; the other side's goes to `start_receiving`

    def start_receiving(self, header: bytes) -> None: ...

    def seal(self, payload: bytes) -> Buffer: ...

    def open(self, ciphertext: Buffer) -> Buffer:
        """Decrypt one frame; a forged, replayed or reordered frame raises `WireError`.

        The frame is spent: a writable one may be decrypted where it lies."""
        ...


class SecretStreamChannel:
    """libsodium's secretstream (XChaCha20-Poly1305), which numbers frames itself."""

    def __init__(self, tx_key: bytes, rx_key: bytes) -> None:
        self._push = bindings.crypto_secretstream_xchacha20poly1305_state()
        self.header = bindings.crypto_secretstream_xchacha20poly1305_init_push(self._push, tx_key)
        self._rx_key = rx_key
        self._pull: Any = None

    def start_receiving(self, header: bytes) -> None:
        self._pull = bindings.crypto_secretstream_xchacha20poly1305_state()
        bindings.crypto_secretstream_xchacha20poly1305_init_pull(self._pull, header, self._rx_key)

    def seal(self, payload: bytes) -> bytes:
        return bindings.crypto_secretstream_xchacha20poly1305_push(self._push, payload)

    def open(self, ciphertext: Buffer) -> bytes:
        if self._pull is None:
            raise WireError("encrypted frame before the handshake finished")
        try:
            payload, _tag = bindings.crypto_secretstream_xchacha20poly1305_pull(
                self._pull, bytes(ciphertext)
            )
        except Exception:  # CryptoError, or ValueError on a frame shorter than the tag
            raise WireError("a frame failed authentication") from None
        return bytes(payload)


class AegisChannel:
    """AEGIS (256, or 128L) with the nonce made of a random per-direction header and a
    frame counter, as secretstream numbers its frames: a frame opens only as the next
    one.

    The keys come from fresh ephemeral keys, so no (key, nonce) pair ever repeats;
    the random header is there should a key ever be reused by mistake. AEGIS-128L
    takes 16-byte keys and nonces: its keys are hashed down from the session keys,
    its nonce holds the header's first 8 bytes."""

    def __init__(self, tx_key: bytes, rx_key: bytes, aegis: Aegis = AEGIS_256) -> None:
        self.aegis = aegis
        self._tx_key, self._rx_key = _channel_key(tx_key, aegis), _channel_key(rx_key, aegis)
        self.header = random_bytes(_HEADER_BYTES)
        self._rx_header: bytes | None = None
        self._sent = 0
        self._received = 0

    def start_receiving(self, header: bytes) -> None:
        self._rx_header = header

    def _nonce(self, header: bytes, counter: int) -> bytes:
        return header[: self.aegis.nonce_bytes - _COUNTER_BYTES] + counter.to_bytes(
            _COUNTER_BYTES, "little"
        )

    def seal(self, payload: bytes) -> memoryview:
        nonce = self._nonce(self.header, self._sent)
        self._sent += 1
        return sealing.seal(payload, nonce, self._tx_key, self.aegis)

    def open(self, ciphertext: Buffer) -> memoryview:
        if self._rx_header is None:
            raise WireError("encrypted frame before the handshake finished")
        nonce = self._nonce(self._rx_header, self._received)
        payload = sealing.open_sealed(ciphertext, nonce, self._rx_key, self.aegis)
        self._received += 1
        return payload


def _channel_key(session_key: bytes, aegis: Aegis) -> bytes:
    """The crypto_kx session key itself for AEGIS-256; for a cipher with shorter keys, a
    hash of it under the cipher's name."""
    if aegis.key_bytes == len(session_key):
        return session_key
    return hashlib.blake2b(
        session_key, digest_size=aegis.key_bytes, person=aegis.name.encode()
    ).digest()


# By name, each made from the (send, receive) session keys.
CHANNELS: dict[str, Callable[[bytes, bytes], SecureChannel]] = {
    AEGIS128L: lambda tx, rx: AegisChannel(tx, rx, AEGIS_128L),
    AEGIS256: AegisChannel,
    SECRETSTREAM: SecretStreamChannel,
}


@dataclass(frozen=True)
class Established:
    remote: Remote
    channel: SecureChannel


class Handshake:
    """One side of the handshake: feed it the peer's frames, send what it returns."""

    def __init__(
        self,
        identity: Identity,
        *,
        initiator: bool,
        listen: Address | None,
        expected_node_id: bytes | None = None,
        ciphers: tuple[str, ...] | None = None,
        routes: tuple[Route, ...] = (),
        seen: Address | None = None,
        gate: Gate = OPEN_GATE,
    ) -> None:
        """`seen` is where we see the other side: the address we dialled, or the one
        its connection came from; it tells a peer behind a NAT its public side."""
        self.identity = identity
        self.initiator = initiator
        self.expected_node_id = expected_node_id
        self.gate = gate
        self.ciphers = list(ciphers if ciphers is not None else offered_ciphers())
        self._eph_pk, self._eph_sk = bindings.crypto_kx_keypair()
        hello: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "pk": identity.public_key,
            "eph": self._eph_pk,
            "listen": list(listen) if listen is not None else None,
            "ciphers": self.ciphers,
        }
        if routes:
            hello["routes"] = [str(route) for route in routes[:MAX_ROUTES]]
        if seen is not None:
            hello["seen"] = [seen[0], seen[1]]
        self._hello = cbor2.dumps(hello)
        self._seen = seen
        self._remote: Remote | None = None
        self._transcript = b""
        self._channel: SecureChannel | None = None

    def hello(self) -> bytes:
        return self._hello

    def receive_hello(self, payload: bytes) -> bytes:
        """Check the peer's hello; returns our proof to send."""
        hello = _loads(payload, _HELLO, "hello")
        if hello["v"] != PROTOCOL_VERSION:
            raise HandshakeError(f"unsupported protocol version {hello['v']}")
        public_key: bytes = hello["pk"]
        if public_key == self.identity.public_key:
            raise HandshakeError("the peer presented our own identity key")
        node_id = node_id_from_public_key(public_key)
        if self.expected_node_id is not None and node_id != self.expected_node_id:
            raise HandshakeError(
                f"expected peer {self.expected_node_id.hex()[:12]}, met {node_id.hex()[:12]}"
            )
        self._remote = Remote(
            node_id,
            public_key,
            _address_from_wire(hello["listen"], "listen"),
            _routes_from_wire(hello.get("routes")),
            _address_from_wire(hello.get("seen"), "seen"),
            far=self._seen,
        )
        first, second = (self._hello, payload) if self.initiator else (payload, self._hello)
        self._transcript = blake2b(_CONTEXT + first + second, encoder=RawEncoder)
        if self.initiator:
            rx, tx = bindings.crypto_kx_client_session_keys(
                self._eph_pk, self._eph_sk, hello["eph"]
            )
        else:
            rx, tx = bindings.crypto_kx_server_session_keys(
                self._eph_pk, self._eph_sk, hello["eph"]
            )
        offers = (self.ciphers, hello["ciphers"])
        cipher = choose_cipher(*(offers if self.initiator else reversed(offers)))
        self._channel = CHANNELS[cipher](tx, rx)
        signature = self.identity.sign(self._role(self.initiator) + self._transcript)
        auth: dict[str, Any] = {"sig": signature, "hdr": self._channel.header}
        credential = self.gate.credential(self._role(self.initiator) + self._transcript)
        if credential is not None:
            auth["m"] = credential
        return cbor2.dumps(auth)

    def receive_auth(self, payload: bytes) -> Established:
        """Check the peer's proof of its identity key; the channel is ready after this."""
        if self._remote is None or self._channel is None:
            raise HandshakeError("proof before hello")
        auth = _loads(payload, _AUTH, "proof")
        signed = self._role(not self.initiator) + self._transcript
        if not verify_signature(self._remote.public_key, signed, auth["sig"]):
            raise HandshakeError("the peer could not prove its identity key")
        standing = self.gate.admit(self._remote.public_key, auth.get("m"), signed)
        self._channel.start_receiving(auth["hdr"])
        remote = dataclasses.replace(self._remote, standing=standing)
        return Established(remote, self._channel)

    @staticmethod
    def _role(initiator: bool) -> bytes:
        return b"initiator" if initiator else b"responder"
