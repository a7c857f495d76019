"""The address others see this peer at, tallied from what they say, sans-IO.

Every handshake tells us where the other side sees us (`Remote.observed`): a
peer behind a NAT learns its router's public side that way, as libp2p's
identify does. One peer's word is a claim, and a liar could steer us to
advertise an address that is not ours; so a host counts only once peers of at
least `quorum` different address blocks reported it (libp2p asks for 4
observers; a home mesh of friends is smaller, so 2 blocks). What is kept is
bounded: a few hosts, a few reporting blocks each, each report forgotten after
`ttl` so a changed public address wins over the old one.
"""

from __future__ import annotations

from collections import OrderedDict

HOSTS = 16  # distinct observed hosts remembered
BLOCKS_PER_HOST = 8  # reporting blocks remembered per host
QUORUM = 2
TTL = 3600.0


class ObservedTally:
    def __init__(
        self,
        quorum: int = QUORUM,
        ttl: float = TTL,
        hosts: int = HOSTS,
        blocks_per_host: int = BLOCKS_PER_HOST,
    ) -> None:
        self.quorum = quorum
        self.ttl = ttl
        self.hosts = hosts
        self.blocks_per_host = blocks_per_host
        # host -> (reporter's block -> when it last said so), most recent host last.
        self._reports: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()

    def report(self, host: str, reporter_block: str, now: float) -> bool:
        """A peer of `reporter_block` sees us at `host`; True when that made `host`
        newly count (reported by `quorum` blocks)."""
        before = self._counts(host, now)
        blocks = self._reports.get(host)
        if blocks is None:
            blocks = self._reports[host] = OrderedDict()
        blocks[reporter_block] = now
        blocks.move_to_end(reporter_block)
        while len(blocks) > self.blocks_per_host:
            blocks.popitem(last=False)
        self._reports.move_to_end(host)
        while len(self._reports) > self.hosts:
            self._reports.popitem(last=False)
        return not before and self._counts(host, now)

    def _counts(self, host: str, now: float) -> bool:
        blocks: dict[str, float] = self._reports.get(host) or {}
        return sum(1 for when in blocks.values() if now - when < self.ttl) >= self.quorum

    def hosts_seen(self, now: float) -> list[str]:
        """The hosts that count, the most recently reported first."""
        return [host for host in reversed(self._reports) if self._counts(host, now)]

    def all_reported(self) -> list[str]:
        """Every host still remembered, counting or not (for a status display)."""
        return list(reversed(self._reports))
