"""ISA-L's parity is zfec's, byte for byte, whatever the pack and the k-of-n."""

from __future__ import annotations

import os

import pytest
import zfec
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.codec import erasure, isal


def _zfec_shares(data: bytes, k: int, n: int) -> list[bytes]:
    size = erasure.share_size(len(data), k)
    padded = data + bytes(size * k - len(data))
    parts = tuple(padded[i * size : (i + 1) * size] for i in range(k))
    return [bytes(share) for share in zfec.Encoder(k, n).encode(parts)]


@pytest.fixture(autouse=True)
def _needs_isal() -> None:
    if os.environ.get(isal.SWITCH) == "0":
        pytest.skip(f"ISA-L is switched off here ({isal.SWITCH}=0)")
    if isal._LIB is None:
        pytest.skip("ISA-L is not installed here (Debian package libisal2)")
    # Installed but set aside by its check against zfec: a fault, not a missing part.
    assert isal.USABLE, "ISA-L is installed, but its parity differs from zfec's"


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=5000), st.integers(1, 12), st.integers(0, 12))
def test_isal_parity_is_zfec_parity(data: bytes, k: int, extra: int) -> None:
    n = k + extra
    assert erasure.encode_pack(data, k, n) == _zfec_shares(data, k, n)


def test_a_pack_of_the_size_backups_make_codes_alike() -> None:
    data = bytes(range(256)) * (6 * 4096 + 3)  # 6 MiB and a little
    shares = erasure.encode_pack(data, 3, 10)
    assert isal.parity(shares[:3], 3, 10) == shares[3:]
    assert shares == _zfec_shares(data, 3, 10)
    assert erasure.decode_pack({i: shares[i] for i in (4, 7, 9)}, 3, 10, len(data)) == data


def test_without_isal_zfec_makes_the_same_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(251)) * 999
    with_isal = erasure.encode_pack(data, 3, 10)
    monkeypatch.setattr(isal, "USABLE", False)
    assert isal.parity(with_isal[:3], 3, 10) is None
    assert erasure.encode_pack(data, 3, 10) == with_isal
