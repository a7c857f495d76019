"""Peers whose request timed out lately: a walk passes them over for a while; sans-IO.

A peer that is gone refuses or resets at once and costs a lookup nothing. One that
hangs (stopped, asleep, its link dead without a reset) answers nothing, and every
lookup whose neighbourhood held it waited out the RPC timeout for it: measured on
ten real peers with one stopped, every `snapshots` took the RPC timeout longer for
as long as the peer stayed stopped, since the others kept naming it. A lookup now
passes over a peer that timed out in the last `backoff` seconds, as if it had
failed again; any sign of life from it (an answer, a connection of its own)
forgets that at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Peers remembered at most (the oldest go first): liars' made-up names time out too.
KEPT = 4096


@dataclass
class SilentPeers:
    backoff: float
    _since: dict[bytes, float] = field(default_factory=dict)  # node id -> when it timed out

    def timed_out(self, node_id: bytes, now: float) -> None:
        self._since.pop(node_id, None)
        self._since[node_id] = now  # the latest last: the oldest go first
        if len(self._since) > KEPT:
            del self._since[next(iter(self._since))]

    def __bool__(self) -> bool:
        """Whether any peer is remembered: a walk on a healthy mesh asks nothing more."""
        return bool(self._since)

    def heard(self, node_id: bytes) -> None:
        if self._since:
            self._since.pop(node_id, None)

    def silent(self, node_id: bytes, now: float) -> bool:
        when = self._since.get(node_id)
        return when is not None and now - when < self.backoff
