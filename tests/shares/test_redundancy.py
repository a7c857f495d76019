"""K-of-N as users type it, the happy rule, and what a too-small mesh is told."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.errors import P2PBackupError
from p2pbackup.shares.redundancy import (
    Redundancy,
    chosen_redundancy,
    default_happy,
    fitting_redundancy,
    parse_redundancy,
    redundancy_of,
    too_few_peers,
)


@pytest.mark.parametrize(
    ("k", "n", "happy"), [(3, 10, 7), (2, 4, 3), (1, 1, 1), (4, 4, 4), (1, 3, 2), (3, 7, 5)]
)
def test_default_happy_keeps_tahoes_seven_and_follows_one_rule(k: int, n: int, happy: int) -> None:
    assert default_happy(k, n) == happy


@given(st.integers(1, 255).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_default_happy_lies_between_k_and_n(kn: tuple[int, int]) -> None:
    k, n = kn
    assert k <= default_happy(k, n) <= n


@pytest.mark.parametrize("text", ["2-of-4", "2of4", " 2 - of - 4 ", "2-OF-4"])
def test_k_of_n_is_read_in_the_forms_people_type(text: str) -> None:
    assert parse_redundancy(text) == (2, 4, 3)
    assert parse_redundancy(text, 4) == (2, 4, 4)


@pytest.mark.parametrize(
    ("text", "happy", "error"),
    [
        ("2/4", None, "write it as K-of-N"),
        ("5-of-4", None, "need 1 <= K <= N <= 255"),
        ("0-of-4", None, "need 1 <= K"),
        ("2-of-300", None, "cannot read|255"),
        ("2-of-4", 5, "between 2 and 4"),
        ("2-of-4", 1, "between 2 and 4"),
    ],
)
def test_a_wrong_redundancy_is_refused_in_words(text: str, happy: int | None, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_redundancy(text, happy)


@pytest.mark.parametrize(
    ("peers", "fits"),
    [(0, None), (1, (1, 1)), (2, (1, 2)), (3, (2, 3)), (5, (3, 5)), (6, (3, 6)), (7, (3, 7))],
)
def test_the_redundancy_suggested_fits_the_peers_found(
    peers: int, fits: tuple[int, int] | None
) -> None:
    assert fitting_redundancy(peers) == fits
    if fits is not None:
        assert default_happy(*fits) <= peers and fits[1] <= peers  # every share placed


def test_a_small_mesh_is_told_counts_and_the_command() -> None:
    message = too_few_peers(3, Redundancy())
    assert message.startswith("only 3 peers can hold shares (7 needed for 3-of-10, happy 7")
    assert message.endswith(
        "start more peers, or if the mesh stays this small, run "
        "`p2pbackup config set redundancy 2-of-3`"
    )
    assert too_few_peers(0, Redundancy()).endswith("start more peers")


def test_settings_and_overrides() -> None:
    assert redundancy_of({}, 60) == Redundancy(3, 10, 7, 60)
    assert redundancy_of({"k": 2, "n": 4}, 60) == Redundancy(2, 4, 3, 60)
    with pytest.raises(P2PBackupError, match="config set redundancy"):
        redundancy_of({"k": 5, "n": 4}, 60)
    with pytest.raises(P2PBackupError, match="not valid"):
        redundancy_of({"k": "2", "n": 4}, 60)
    setting = Redundancy(3, 10, 7, 60)
    assert chosen_redundancy(setting, None, None) == setting
    assert chosen_redundancy(setting, "2-of-4", None) == Redundancy(2, 4, 3, 60)
    assert chosen_redundancy(setting, None, 9) == Redundancy(3, 10, 9, 60)
    with pytest.raises(P2PBackupError, match="between 3 and 10"):
        chosen_redundancy(setting, None, 11)
