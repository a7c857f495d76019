"""The census kept by differences gives the counts a fresh count would, hour after hour."""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.simulations.census import ShareCensus

PACKS = [bytes([p]) * 4 for p in range(4)]
Pair = tuple[bytes, int]

store_state = st.tuples(
    st.frozensets(st.tuples(st.sampled_from(PACKS), st.integers(0, 5)), max_size=8),
    st.sampled_from(["live", "durable", "neither", "gone"]),
)
hour = st.dictionaries(st.sampled_from([b"a", b"b", b"c", b"d", b"e"]), store_state)


def fresh_count(stores: dict[bytes, tuple[frozenset[Pair], str]]) -> tuple[Counter, Counter]:
    live: set[Pair] = set()
    durable: set[Pair] = set()
    for held, standing in stores.values():
        if standing in ("live", "durable"):
            durable |= held
        if standing == "live":
            live |= held
    return Counter(p for p, _ in live), Counter(p for p, _ in durable)


@settings(max_examples=200, deadline=None)
@given(st.lists(hour, min_size=1, max_size=6), st.booleans())
def test_census_matches_a_fresh_count_each_hour(
    hours: list[dict[bytes, tuple[frozenset[Pair], str]]], same_objects: bool
) -> None:
    census = ShareCensus()
    kept: dict[bytes, frozenset[Pair]] = {}
    for stores in hours:
        for node_id, (held, standing) in stores.items():
            if standing == "gone":
                continue
            # A store that did not change hands back the very set it gave before.
            if same_objects and kept.get(node_id) == held:
                held = kept[node_id]
            kept[node_id] = held
            census.store(node_id, held, standing == "live", standing != "neither")
        live, durable = census.close_round()
        want_live, want_durable = fresh_count({n: s for n, s in stores.items() if s[1] != "gone"})
        for pack in PACKS:
            assert (live[pack], durable[pack]) == (want_live[pack], want_durable[pack])
