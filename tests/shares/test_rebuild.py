"""A pack from its data shares by a join, from any others by a decode checked by its id."""

from __future__ import annotations

import random

import pytest

from p2pbackup.codec.erasure import encode_pack
from p2pbackup.codec.packs import pack_id_of
from p2pbackup.shares.rebuild import join_data_shares, rebuild_pack


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 5, 299, 300, 301, 4096, 100_003])
def test_the_data_shares_joined_are_the_pack(length: int) -> None:
    data = random.Random(length).randbytes(length)
    shares = dict(enumerate(encode_pack(data, 3, 10)))
    assert join_data_shares(shares, 3, length) == data
    assert rebuild_pack(shares, pack_id_of(data), 3, 10, length) == data
    parity = {i: shares[i] for i in (0, 5, 9)}
    assert rebuild_pack(parity, pack_id_of(data), 3, 10, length) == data


def test_a_decode_that_is_not_the_pack_is_refused() -> None:
    data = random.Random(1).randbytes(10_000)
    shares = encode_pack(data, 3, 10)
    others = {1: shares[1], 4: shares[4], 7: b"\0" * len(shares[7])}
    assert rebuild_pack(others, pack_id_of(data), 3, 10, len(data)) is None


def test_data_shares_of_the_wrong_size_fall_back_to_the_decode() -> None:
    data = random.Random(2).randbytes(9_000)
    shares = dict(enumerate(encode_pack(data, 3, 10)))
    shares[1] = shares[1][:-1]  # ignored by the decode, which still has 0, 2 and 3
    assert join_data_shares(shares, 3, len(data)) is None
    assert rebuild_pack(shares, pack_id_of(data), 3, 10, len(data)) == data
