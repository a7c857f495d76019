"""The routing table's k-buckets, and the pick of a bucket's contacts nearest a target."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from p2pbackup.net.contact import Contact


class Bucket:
    __slots__ = ("contacts", "last_touched", "pinging", "replacements")

    def __init__(self, now: float) -> None:
        self.contacts: OrderedDict[int, Contact] = OrderedDict()
        self.replacements: OrderedDict[int, Contact] = OrderedDict()
        self.last_touched = now
        self.pinging: int | None = None


class Buckets(dict[int, Bucket]):
    """The 160 buckets by index, each made when first written or read by index.

    A table uses the dozen or two buckets from its nearest contact outwards;
    making all 160 up front cost two dicts each, per peer (about 400 MB for a
    10,000-peer simulated world). Readers that must not make one use `get`.
    """

    def __init__(self, now: float) -> None:
        super().__init__()
        self.made_at = now  # when every bucket not yet made was last touched

    def __missing__(self, index: int) -> Bucket:
        bucket = self[index] = Bucket(self.made_at)
        return bucket

    def size(self, index: int) -> int:
        bucket = self.get(index)
        return 0 if bucket is None else len(bucket.contacts)

    def touched(self, index: int) -> float:
        bucket = self.get(index)
        return self.made_at if bucket is None else bucket.last_touched


def take_nearest(
    nearest: list[tuple[int, Contact]],
    contacts: dict[int, Contact],
    count: int,
    target_int: int,
    accept: Callable[[int, Contact], bool] | None,
    skip: int | None = None,
) -> None:
    """Add a bucket's contacts nearest `target_int` to `nearest`, up to `count` in all,
    passing over the contact keyed `skip`.

    Distances are distinct, so any exact selection gives the same answer: keys
    sorted by a C-level key (`int.__xor__`) cost no Python call per contact."""
    wanted = count - len(nearest)
    keys: Iterable[int] = contacts
    if accept is not None:
        keys = [key for key, c in contacts.items() if key != skip and accept(key, c)]
    elif skip is not None and skip in contacts:
        keys = [key for key in contacts if key != skip]
    if wanted == 1:
        if keys:
            key = min(keys, key=target_int.__xor__)
            nearest.append((key, contacts[key]))
        return
    chosen = sorted(keys, key=target_int.__xor__)[:wanted]
    nearest.extend((key, contacts[key]) for key in chosen)
