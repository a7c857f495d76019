"""The routing table's k-buckets, and the pick of a bucket's contacts nearest a target."""

from __future__ import annotations

from collections import OrderedDict

from p2pbackup.net.contact import Contact


class Bucket:
    __slots__ = ("contacts", "last_touched", "pinging", "replacements")

    def __init__(self, now: float) -> None:
        # Least recently seen first. A plain dict, not an OrderedDict: every lookup answered
        # walks a bucket's keys, and a dict keeps them side by side in one array.
        self.contacts: dict[int, Contact] = {}
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
