"""Property tests for the sans-IO lookup: driven against a made-up mesh where each
peer knows some others and some peers never answer, in any order of replies."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.dht.lookup import Lookup
from p2pbackup.net.contact import Contact


def contact(n: int) -> Contact:
    return Contact(n.to_bytes(20, "big"), "10.0.0.1", 4000 + n % 1000)


def distance(c: Contact, target: bytes) -> int:
    return int.from_bytes(c.node_id, "big") ^ int.from_bytes(target, "big")


def test_a_failure_after_nearer_peers_pushed_the_peer_out_is_tolerated() -> None:
    target = (0).to_bytes(20, "big")
    lookup = Lookup(target, k=3, alpha=3)
    lookup.seed([contact(1000), contact(1001), contact(1002)])
    asked = lookup.next_queries()
    assert len(asked) == 3
    # The first answer names many nearer peers: the shortlist keeps only 3k.
    lookup.on_reply(asked[0], [contact(n) for n in range(1, 10)])
    lookup.on_failure(asked[1])  # no longer in the shortlist
    lookup.on_reply(asked[2], [])
    assert lookup.next_queries() == [contact(1), contact(2), contact(3)]


@settings(max_examples=150, deadline=None)
@given(
    peers=st.integers(min_value=5, max_value=60),
    k=st.integers(min_value=1, max_value=12),
    alpha=st.integers(min_value=1, max_value=4),
    dead=st.sets(st.integers(min_value=0, max_value=59), max_size=20),
    knows=st.integers(min_value=1, max_value=40),
    order=st.randoms(use_true_random=False),
)
def test_a_lookup_ends_with_the_nearest_live_peers_it_could_reach(
    peers: int, k: int, alpha: int, dead: set[int], knows: int, order: object
) -> None:
    import random

    assert isinstance(order, random.Random)
    everyone = [contact(n * 7919 + 1) for n in range(peers)]
    target = (123456).to_bytes(20, "big")
    neighbours = {c.node_id: order.sample(everyone, min(knows, peers)) for c in everyone}
    down = {everyone[i].node_id for i in dead if i < peers}
    lookup = Lookup(target, k=k, alpha=alpha)
    lookup.seed(everyone[:2])
    in_flight: list[Contact] = []
    for _ in range(10 * peers):
        in_flight += lookup.next_queries()
        assert lookup.in_flight() == len(in_flight) <= alpha
        if not in_flight:
            break
        asked = in_flight.pop(order.randrange(len(in_flight)))
        if asked.node_id in down:
            lookup.on_failure(asked)
        else:
            lookup.on_reply(asked, neighbours[asked.node_id])
    assert not in_flight and lookup.done
    found = lookup.result()
    assert len(found) <= k
    assert not {c.node_id for c in found} & down
    assert [distance(c, target) for c in found] == sorted(distance(c, target) for c in found)
