"""Sizes as people type them, and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.base.sizes import DEFAULT_OWNER_QUOTA, format_size, parse_quota, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1_048_576),
        ("0", 0),
        ("512B", 512),
        ("20GiB", 20 * 2**30),
        ("20 GiB", 20 * 2**30),
        ("1.5G", 3 * 2**29),
        ("1.5g", 3 * 2**29),
        ("4k", 4096),
        ("4KiB", 4096),
        ("2Ti", 2 * 2**40),
        ("500MB", 500_000_000),
        ("500mb", 500_000_000),
        ("1kB", 1000),
        (" 2 TB ", 2 * 10**12),
        ("0.5KiB", 512),
        (".5K", 512),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", "abc", "GiB", "-1G", "1.2.3G", "10 XB", "10GiBs", "1e9", "nan", "inf", "1 G B"]
)
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (20 * 2**30, "20 GiB"),
        (3 * 2**29, "1.5 GiB"),
        (2**60, "1 EiB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


def test_format_size_refuses_negative() -> None:
    with pytest.raises(ValueError):
        format_size(-1)


@given(st.integers(min_value=0, max_value=2**70))
def test_format_then_parse_round_trips_within_rounding(size: int) -> None:
    parsed = parse_size(format_size(size))
    assert abs(parsed - size) <= max(1, size * 0.005)


@given(st.integers(min_value=0, max_value=2**62))
def test_plain_byte_counts_are_exact(size: int) -> None:
    assert parse_size(str(size)) == size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50%", 500),
        ("12.5%", 125),
        ("0.5", 500),
        (".25", 250),
        ("100%", 1000),
        ("300", 300),
        ("1KiB", 1000),  # a size past the capacity is the capacity
        ("2kB", 1000),
    ],
)
def test_parse_quota(text: str, expected: int) -> None:
    assert parse_quota(text, 1000) == expected


@pytest.mark.parametrize("text", ["150%", "1.5", "half", "-5%", ""])
def test_parse_quota_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="quota"):
        parse_quota(text, 1000)


def test_the_default_quota_is_half_the_capacity() -> None:
    assert parse_quota(DEFAULT_OWNER_QUOTA, 20 * 2**30) == 10 * 2**30
