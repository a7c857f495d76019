"""Share descriptors: the owner's signed statement of what a pack's shares are.

Every share travels with its pack's descriptor: pack id, k, n, pack length,
share size, the Merkle root of every share and the lease expiry, signed by
the owner identity over canonical CBOR. Any peer can then verify, audit and
rebuild shares (and place repaired ones) without reading the data and
without the owner online; nobody but the owner can change what is signed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import Any

import cbor2

from p2pbackup.codec.erasure import (
    HASH_BYTES,
    LATEST_TREE,
    MAX_N,
    TREES,
    ErasureError,
    check_params,
    share_root,
    share_size,
)
from p2pbackup.codec.packs import PACK_ID_BYTES
from p2pbackup.crypto.identity import (
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    Identity,
    verify_signature,
)
from p2pbackup.errors import WireError
from p2pbackup.wire.schema import bytes_field, check_fields, int_field, list_of, load_map

# A descriptor's version names the hash of its share trees (`erasure.TREES`): version 1
# descriptors, signed before BLAKE3 trees, stay valid, audited and rebuilt as they were.
DESCRIPTOR_VERSION = LATEST_TREE
MAX_PACK_BYTES = 1 << 31
MAX_LEASE_EXPIRY = 1 << 40
# 255 roots of 34 encoded bytes plus the fixed fields stay well under this.
MAX_DESCRIPTOR_BYTES = 16 * 1024
_SIGNING_CONTEXT = b"p2pbackup-share-descriptor-v1\x00"

_FIELDS = {
    "v": int_field(min(TREES), max(TREES)),
    "owner": bytes_field(exact=PUBLIC_KEY_BYTES),
    "pack": bytes_field(exact=PACK_ID_BYTES),
    "k": int_field(1, MAX_N),
    "n": int_field(1, MAX_N),
    "len": int_field(0, MAX_PACK_BYTES),
    "share": int_field(1, MAX_PACK_BYTES),
    "roots": list_of(bytes_field(exact=HASH_BYTES), MAX_N),
    "lease": int_field(0, MAX_LEASE_EXPIRY),
    "sig": bytes_field(exact=SIGNATURE_BYTES),
}


@dataclass(frozen=True)
class ShareDescriptor:
    owner: bytes
    pack_id: bytes
    k: int
    n: int
    length: int
    share_size: int
    roots: tuple[bytes, ...]
    lease_expiry: int
    signature: bytes
    version: int = DESCRIPTOR_VERSION  # also the hash of the share trees

    def _unsigned(self) -> dict[str, Any]:
        return {
            "v": self.version,
            "owner": self.owner,
            "pack": self.pack_id,
            "k": self.k,
            "n": self.n,
            "len": self.length,
            "share": self.share_size,
            "roots": list(self.roots),
            "lease": self.lease_expiry,
        }

    def signed_bytes(self) -> bytes:
        """What the signature covers: a context label and canonical CBOR of every other field."""
        return _SIGNING_CONTEXT + cbor2.dumps(self._unsigned(), canonical=True)

    def verify(self) -> bool:
        """True when the owner's signature covers exactly these fields. Never raises."""
        return self._signature_valid

    @cached_property
    def _signature_valid(self) -> bool:
        """Checked once per object: its fields are frozen, and `parsed_descriptor` hands
        one object to every share and peer that brings the same bytes."""
        return verify_signature(self.owner, self.signed_bytes(), self.signature)

    def to_bytes(self) -> bytes:
        return cbor2.dumps({**self._unsigned(), "sig": self.signature}, canonical=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> ShareDescriptor:
        """Parse and schema-check a descriptor; raises only `WireError`.

        Does not check the signature: call `verify()`.
        """
        if len(data) > MAX_DESCRIPTOR_BYTES:
            raise WireError(f"descriptor of {len(data)} bytes exceeds {MAX_DESCRIPTOR_BYTES}")
        raw = load_map(data, "descriptor")
        fields = check_fields(raw, _FIELDS)
        k, n, length = fields["k"], fields["n"], fields["len"]
        try:
            check_params(k, n)
        except ErasureError as exc:
            raise WireError(str(exc)) from None
        if fields["share"] != share_size(length, k):
            raise WireError(
                f"share size {fields['share']} does not fit a {length}-byte pack, k={k}"
            )
        if len(fields["roots"]) != n:
            raise WireError(f"{len(fields['roots'])} share roots for n={n}")
        return cls(
            owner=fields["owner"],
            pack_id=fields["pack"],
            k=k,
            n=n,
            length=length,
            share_size=fields["share"],
            roots=tuple(fields["roots"]),
            lease_expiry=fields["lease"],
            signature=fields["sig"],
            version=fields["v"],
        )

    def check_share(self, index: int, share: bytes) -> bool:
        """True when `share` is share `index` of this pack (size and Merkle root match)."""
        if not 0 <= index < self.n or len(share) != self.share_size:
            return False
        return share_root(share, self.version) == self.roots[index]

    def renewed(self, identity: Identity, lease_expiry: int) -> ShareDescriptor:
        """The same descriptor with a new lease, signed again (owners renew leases)."""
        return _signed(identity, replace(self, lease_expiry=lease_expiry))


def _signed(identity: Identity, unsigned: ShareDescriptor) -> ShareDescriptor:
    if identity.public_key != unsigned.owner:
        raise ValueError("only the owner identity can sign its descriptors")
    return replace(unsigned, signature=identity.sign(unsigned.signed_bytes()))


def sign_descriptor(
    identity: Identity,
    pack_id: bytes,
    k: int,
    n: int,
    length: int,
    roots: list[bytes] | tuple[bytes, ...],
    lease_expiry: int,
) -> ShareDescriptor:
    """A descriptor for a pack's shares, signed by the owner identity.

    The share size follows from length and k, so it cannot disagree with them.
    """
    check_params(k, n)
    if len(pack_id) != PACK_ID_BYTES:
        raise ValueError(f"a pack id is {PACK_ID_BYTES} bytes")
    if len(roots) != n or any(len(r) != HASH_BYTES for r in roots):
        raise ValueError(f"need n={n} share roots of {HASH_BYTES} bytes")
    if not 0 <= length <= MAX_PACK_BYTES or not 0 <= lease_expiry <= MAX_LEASE_EXPIRY:
        raise ValueError("pack length or lease expiry out of range")
    unsigned = ShareDescriptor(
        owner=identity.public_key,
        pack_id=pack_id,
        k=k,
        n=n,
        length=length,
        share_size=share_size(length, k),
        roots=tuple(roots),
        lease_expiry=lease_expiry,
        signature=bytes(SIGNATURE_BYTES),
    )
    return _signed(identity, unsigned)


# Descriptors remembered by `parsed_descriptor`, and the largest remembered: a
# 10-share descriptor is about 500 bytes, and any peer can put descriptors to a
# holder, so what they can make it keep stays near 4,096 x 2 KiB twice over.
PARSED_KEPT = 4096
PARSED_MAX_BYTES = 2048


def parsed_descriptor(data: bytes) -> ShareDescriptor:
    """`ShareDescriptor.from_bytes`, once per distinct bytes: a holder parses each held
    share's descriptor every round, and equal bytes give one frozen descriptor, whose
    signature is then checked once (`verify`) however many shares or peers bring it.
    Larger descriptors are parsed each time. Raises `WireError`, every time: failures
    are not remembered."""
    if len(data) > PARSED_MAX_BYTES:
        return ShareDescriptor.from_bytes(data)
    return _parsed_small(data)


@lru_cache(maxsize=PARSED_KEPT)
def _parsed_small(data: bytes) -> ShareDescriptor:
    return ShareDescriptor.from_bytes(data)


def describe_pack(
    identity: Identity, pack_id: bytes, shares: list[bytes], k: int, length: int, lease_expiry: int
) -> ShareDescriptor:
    """Sign a descriptor for shares just made by `encode_pack` (roots computed here)."""
    return sign_descriptor(
        identity,
        pack_id,
        k,
        len(shares),
        length,
        [share_root(s, DESCRIPTOR_VERSION) for s in shares],
        lease_expiry,
    )


def same_share_set(ours: ShareDescriptor, theirs: ShareDescriptor) -> bool:
    """Both describe the same shares (leases may differ: renewals arrive one by one)."""
    return (ours.owner, ours.pack_id, ours.k, ours.n, ours.length, ours.roots) == (
        theirs.owner,
        theirs.pack_id,
        theirs.k,
        theirs.n,
        theirs.length,
        theirs.roots,
    )
