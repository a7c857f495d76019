"""Peer identity: an Ed25519 key pair whose public key fixes the node id.

The node id is the 160-bit BLAKE2b digest of the public key, so an id cannot
be chosen freely: placing oneself next to a victim's data costs a key search.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from nacl.encoding import RawEncoder
from nacl.exceptions import BadSignatureError
from nacl.hash import blake2b
from nacl.signing import SigningKey, VerifyKey

from p2pbackup.base.ids import NODE_ID_BYTES

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def node_id_from_public_key(public_key: bytes) -> bytes:
    """The 160-bit node id that belongs to an Ed25519 public key."""
    return blake2b(public_key, digest_size=NODE_ID_BYTES, encoder=RawEncoder)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `message`; never raises."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """A peer's signing key with its derived public key and node id."""

    signing_key: SigningKey

    @classmethod
    def generate(cls) -> Identity:
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """Deterministic identity from 32 seed bytes (recovery, simulation)."""
        return cls(SigningKey(seed))

    @property
    def seed(self) -> bytes:
        return bytes(self.signing_key)

    @cached_property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @cached_property
    def node_id(self) -> bytes:
        return node_id_from_public_key(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature
