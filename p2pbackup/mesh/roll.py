"""The roll of a mesh: every member certificate and revocation, sans-IO.

Each item is founder-signed, so merging two rolls is a set union of items
that verify; the order items arrive in changes nothing. A member is on the
roll while it holds a certificate and no revocation; a revocation is final.
"""

from __future__ import annotations

from collections.abc import Iterable

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from p2pbackup.mesh.certs import Certificate, MembershipError, Revocation, parse_item

MAX_ROLL_ITEMS = 4096
DIGEST_BYTES = 32


class Roll:
    """The certificates and revocations of one mesh that this peer holds."""

    def __init__(self, mesh: bytes) -> None:
        self.mesh = mesh
        self.certificates: dict[bytes, Certificate] = {}
        self.revocations: dict[bytes, Revocation] = {}
        self._items: dict[bytes, bytes] = {}  # item bytes by their hash

    def __len__(self) -> int:
        return len(self._items)

    def add(self, data: bytes) -> Certificate | Revocation | None:
        """Keep an item if it verifies, belongs to this mesh and is new; the item if
        it was new, None if already held. `MembershipError` if it does not verify."""
        item = parse_item(data)
        if item.mesh != self.mesh:
            raise MembershipError("a roll item of another mesh")
        key = _hash(data)
        if key in self._items:
            return None
        if len(self._items) >= MAX_ROLL_ITEMS:
            raise MembershipError(f"the roll is full ({MAX_ROLL_ITEMS} items)")
        self._items[key] = data
        if isinstance(item, Revocation):
            self.revocations.setdefault(item.member, item)
        else:
            held = self.certificates.get(item.member)
            # One certificate per member: the earliest, so every roll shows the same.
            if held is None or (item.issued, item.sig) < (held.issued, held.sig):
                self.certificates[item.member] = item
        return item

    def merge(self, items: Iterable[bytes]) -> list[Certificate | Revocation]:
        """Add what verifies of `items` (the rest is skipped); the new ones."""
        added = []
        for data in items:
            try:
                item = self.add(data)
            except MembershipError:
                continue
            if item is not None:
                added.append(item)
        return added

    def items(self) -> list[bytes]:
        return [self._items[key] for key in sorted(self._items)]

    def digest(self) -> bytes:
        return blake2b(b"".join(sorted(self._items)), digest_size=DIGEST_BYTES, encoder=RawEncoder)

    def expelled(self, member: bytes) -> bool:
        return member in self.revocations

    def is_member(self, member: bytes) -> bool:
        return member in self.certificates and member not in self.revocations


def _hash(data: bytes) -> bytes:
    return blake2b(data, digest_size=DIGEST_BYTES, encoder=RawEncoder)
