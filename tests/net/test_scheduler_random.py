"""trio's scheduler generator, with its shuffle inlined, draws what the standard one does."""

import random

from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.net.at_once import SchedulerRandom


@given(st.integers(0, 2**64), st.lists(st.integers(0, 300), max_size=12))
def test_the_same_seed_gives_the_same_permutations_and_draws(seed: int, sizes: list[int]) -> None:
    standard, ours = random.Random(seed), SchedulerRandom(seed)
    for size in sizes:
        expected, got = list(range(size)), list(range(size))
        standard.shuffle(expected)
        ours.shuffle(got)
        assert got == expected
    assert ours.getrandbits(64) == standard.getrandbits(64)  # the state moved alike
