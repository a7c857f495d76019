"""Which peers a walk passes over: those that timed out within the backoff, until heard."""

from __future__ import annotations

from p2pbackup.dht import silent
from p2pbackup.dht.silent import SilentPeers


def test_a_peer_is_silent_for_the_backoff_unless_heard_from() -> None:
    peers = SilentPeers(backoff=60.0)
    assert not peers and not peers.silent(b"a", 0.0)
    peers.timed_out(b"a", 10.0)
    assert peers and peers.silent(b"a", 69.9) and not peers.silent(b"a", 70.0)
    peers.timed_out(b"a", 100.0)
    peers.heard(b"a")  # an answer, or a connection of its own
    assert not peers.silent(b"a", 100.0) and not peers


def test_the_memory_is_bounded_and_forgets_the_oldest_first() -> None:
    peers = SilentPeers(backoff=60.0)
    for i in range(silent.KEPT + 10):
        peers.timed_out(i.to_bytes(20, "big"), 0.0)
    assert not peers.silent((0).to_bytes(20, "big"), 1.0)  # made-up names cannot grow it
    assert peers.silent((silent.KEPT + 9).to_bytes(20, "big"), 1.0)
    assert len(peers._since) == silent.KEPT
