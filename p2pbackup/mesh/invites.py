"""Invite codes and the founder's book of the invites it gave out, sans-IO.

A code is one line: `p2pb1-` and the base32 of a CBOR map holding the mesh
id, up to four inviter addresses, a random secret and an expiry, signed by
the founder. The secret never crosses the wire: the newcomer proves it holds
it with a keyed hash of the handshake transcript, and names the invite by an
id derived from it. The book keeps, per invite id, the key that checks such
proofs, the expiry and the uses left; the peer stores it durably and spends
a use before it answers, so a used invite stays used after a crash.
"""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass, field
from typing import Any

import cbor2
from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from p2pbackup.crypto.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Identity, verify_signature
from p2pbackup.errors import WireError
from p2pbackup.mesh.certs import MembershipError
from p2pbackup.wire.schema import bytes_field, int_field, list_of, load_map, map_of, str_field

PREFIX = "p2pb1-"
MAX_ADDRESSES = 4
SECRET_BYTES = 24
INVITE_ID_BYTES = 16
PROOF_BYTES = 32
MAX_CODE = 1024
MAX_INVITES = 10_000
_LABEL = b"p2pb invite v1"
_PERSON_ID = b"p2pb:invite-id"
_PERSON_KEY = b"p2pb:invite-key"
_BODY = map_of(
    {
        "mesh": bytes_field(exact=PUBLIC_KEY_BYTES),
        "addrs": list_of(str_field(300), MAX_ADDRESSES),
        "secret": bytes_field(max_len=32),
        "expires": int_field(0, 2**40),
    }
)
_SIGNED = map_of({"b": bytes_field(max_len=MAX_CODE), "s": bytes_field(exact=SIGNATURE_BYTES)})


@dataclass(frozen=True)
class Invite:
    """What a code says: join `mesh` by dialling one of `addresses` before `expires`."""

    mesh: bytes
    addresses: tuple[str, ...]
    secret: bytes = field(repr=False)
    expires: int

    @property
    def invite_id(self) -> bytes:
        return invite_id(self.secret)

    def proof(self, transcript: bytes) -> bytes:
        """The keyed hash that shows the secret is held, bound to one handshake."""
        return invite_proof(invite_key(self.secret), transcript)

    def encode(self, founder: Identity) -> str:
        body = cbor2.dumps(
            {
                "mesh": self.mesh,
                "addrs": list(self.addresses[:MAX_ADDRESSES]),
                "secret": self.secret,
                "expires": self.expires,
            }
        )
        signed = cbor2.dumps({"b": body, "s": founder.sign(_LABEL + body)})
        return PREFIX + base64.b32encode(signed).decode().rstrip("=").lower()


def new_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


def decode_invite(code: str) -> Invite:
    """The invite a code holds, its founder signature checked; `MembershipError` with a
    one-line reason for anything else."""
    code = code.strip()
    if not code.startswith(PREFIX) or len(code) > 2 * MAX_CODE:
        raise MembershipError(f"not an invite code (one starts with {PREFIX})")
    text = code[len(PREFIX) :].upper()
    try:
        signed = base64.b32decode(text + "=" * (-len(text) % 8))
        outer = _SIGNED(load_map(signed, "invite code"))
        body: dict[str, Any] = _BODY(load_map(outer["b"], "invite"))
    except (ValueError, WireError) as exc:
        raise MembershipError(f"a damaged invite code: {exc}") from None
    if len(body["secret"]) < 16:
        raise MembershipError("a damaged invite code: its secret is too short")
    if not verify_signature(body["mesh"], _LABEL + outer["b"], outer["s"]):
        raise MembershipError("a tampered invite code: its signature does not match its mesh")
    return Invite(body["mesh"], tuple(body["addrs"]), body["secret"], body["expires"])


def invite_id(secret: bytes) -> bytes:
    return blake2b(secret, digest_size=INVITE_ID_BYTES, person=_PERSON_ID, encoder=RawEncoder)


def invite_key(secret: bytes) -> bytes:
    return blake2b(secret, digest_size=32, person=_PERSON_KEY, encoder=RawEncoder)


def invite_proof(key: bytes, transcript: bytes) -> bytes:
    return blake2b(transcript, digest_size=PROOF_BYTES, key=key, encoder=RawEncoder)


@dataclass
class BookEntry:
    key: bytes = field(repr=False)
    expires: int
    uses_left: int


class InviteBook:
    """The invites this founder gave out, by id."""

    def __init__(self, entries: dict[bytes, BookEntry] | None = None) -> None:
        self.entries: dict[bytes, BookEntry] = entries or {}

    def add(self, invite: Invite, uses: int) -> None:
        if len(self.entries) >= MAX_INVITES:
            raise MembershipError(f"{MAX_INVITES} invites are outstanding; let some expire first")
        self.entries[invite.invite_id] = BookEntry(invite_key(invite.secret), invite.expires, uses)

    def proves(self, identifier: bytes, proof: bytes, transcript: bytes) -> bool:
        """Does `proof` show the secret of a known invite (used or not)?"""
        entry = self.entries.get(identifier)
        if entry is None:
            return False
        return hmac.compare_digest(invite_proof(entry.key, transcript), proof)

    def spend(self, identifier: bytes, now: float) -> None:
        """Take one use of an invite; `MembershipError` says why it cannot be."""
        entry = self.entries.get(identifier)
        if entry is None:
            raise MembershipError("this invite is unknown here (forged, or from another mesh)")
        if entry.uses_left <= 0:
            raise MembershipError("this invite was already used")
        if now >= entry.expires:
            raise MembershipError("this invite has expired; ask for a new one")
        entry.uses_left -= 1

    def prune(self, now: float, keep_for: float = 30 * 86400) -> None:
        """Forget invites long expired (a late use is told "unknown" then)."""
        for identifier, entry in list(self.entries.items()):
            if entry.expires + keep_for < now:
                del self.entries[identifier]

    def to_wire(self) -> list[list[Any]]:
        return [[i, e.key, e.expires, e.uses_left] for i, e in sorted(self.entries.items())]

    @classmethod
    def from_wire(cls, value: Any) -> InviteBook:
        entries: dict[bytes, BookEntry] = {}
        for identifier, key, expires, uses in value or []:
            entries[bytes(identifier)] = BookEntry(bytes(key), int(expires), int(uses))
        return cls(entries)
