"""What the founder signs (member certificates, revocations) and what a member signs
(the binding of a node key to its member key), sans-IO.

The mesh id is the founder's member public key, so anyone can check that a
certificate or a revocation comes from the founder with nothing but the id.
Each signed body starts with its own label, so no signature of one kind can
pass for another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2

from p2pbackup.crypto.identity import (
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    Identity,
    verify_signature,
)
from p2pbackup.errors import P2PBackupError, WireError
from p2pbackup.wire.schema import bytes_field, int_field, load_map, map_of, str_field

MAX_NAME = 64
# The most a certificate or revocation takes on the wire (a 64-char name of 4-byte runes).
MAX_ITEM = 512
_CERT_LABEL = b"p2pb member certificate v1"
_REVOKE_LABEL = b"p2pb member revocation v1"
_BIND_LABEL = b"p2pb member binding v1"

_KEY = bytes_field(exact=PUBLIC_KEY_BYTES)
_SIG = bytes_field(exact=SIGNATURE_BYTES)
_CERT = map_of(
    {
        "t": str_field(8),
        "mesh": _KEY,
        "member": _KEY,
        "name": str_field(MAX_NAME),
        "issued": int_field(0, 2**40),
        "sig": _SIG,
    }
)
_REVOCATION = map_of(
    {"t": str_field(8), "mesh": _KEY, "member": _KEY, "at": int_field(0, 2**40), "sig": _SIG}
)


class MembershipError(P2PBackupError):
    """A certificate, revocation, invite or credential is not what it claims."""


@dataclass(frozen=True)
class Certificate:
    """The founder's word that `member` belongs to `mesh`, under `name` since `issued`."""

    mesh: bytes
    member: bytes
    name: str
    issued: int
    sig: bytes

    @classmethod
    def issue(cls, founder: Identity, member: bytes, name: str, issued: int) -> Certificate:
        name = name[:MAX_NAME]
        body = _cert_body(founder.public_key, member, name, issued)
        return cls(founder.public_key, member, name, issued, founder.sign(body))

    def verify(self) -> bool:
        body = _cert_body(self.mesh, self.member, self.name, self.issued)
        return verify_signature(self.mesh, body, self.sig)

    def to_bytes(self) -> bytes:
        return cbor2.dumps(
            {
                "t": "cert",
                "mesh": self.mesh,
                "member": self.member,
                "name": self.name,
                "issued": self.issued,
                "sig": self.sig,
            }
        )


@dataclass(frozen=True)
class Revocation:
    """The founder's word that `member` is expelled from `mesh` (since `at`)."""

    mesh: bytes
    member: bytes
    at: int
    sig: bytes

    @classmethod
    def issue(cls, founder: Identity, member: bytes, at: int) -> Revocation:
        body = _revoke_body(founder.public_key, member, at)
        return cls(founder.public_key, member, at, founder.sign(body))

    def verify(self) -> bool:
        # The founder cannot be expelled: its revocation would orphan the mesh.
        if self.member == self.mesh:
            return False
        return verify_signature(self.mesh, _revoke_body(self.mesh, self.member, self.at), self.sig)

    def to_bytes(self) -> bytes:
        return cbor2.dumps(
            {
                "t": "revoke",
                "mesh": self.mesh,
                "member": self.member,
                "at": self.at,
                "sig": self.sig,
            }
        )


Item = Certificate | Revocation


def parse_item(data: bytes) -> Item:
    """A certificate or revocation from its bytes, signature checked; raises
    `MembershipError` for anything else, whatever the bytes."""
    if len(data) > MAX_ITEM:
        raise MembershipError(f"a roll item of {len(data)} bytes (at most {MAX_ITEM})")
    try:
        raw = load_map(data, "roll item")
        kind = raw.get("t")
        item: Item
        if kind == "cert":
            fields: dict[str, Any] = _CERT(raw)
            item = Certificate(
                fields["mesh"], fields["member"], fields["name"], fields["issued"], fields["sig"]
            )
        elif kind == "revoke":
            fields = _REVOCATION(raw)
            item = Revocation(fields["mesh"], fields["member"], fields["at"], fields["sig"])
        else:
            raise MembershipError(f"unknown roll item kind {kind!r}")
    except WireError as exc:
        raise MembershipError(f"malformed roll item: {exc}") from None
    if not item.verify():
        raise MembershipError("a roll item not signed by its mesh's founder")
    return item


def parse_certificate(data: bytes) -> Certificate:
    item = parse_item(data)
    if not isinstance(item, Certificate):
        raise MembershipError("expected a member certificate, got a revocation")
    return item


def bind(member: Identity, node_public_key: bytes) -> bytes:
    """The member key's signature that `node_public_key` acts for it (in every mesh it
    belongs to: membership itself is the certificate's to say)."""
    return member.sign(_BIND_LABEL + node_public_key)


def binding_holds(member: bytes, node_public_key: bytes, signature: bytes) -> bool:
    return verify_signature(member, _BIND_LABEL + node_public_key, signature)


def _cert_body(mesh: bytes, member: bytes, name: str, issued: int) -> bytes:
    return _CERT_LABEL + cbor2.dumps([mesh, member, name, issued])


def _revoke_body(mesh: bytes, member: bytes, at: int) -> bytes:
    return _REVOKE_LABEL + cbor2.dumps([mesh, member, at])
