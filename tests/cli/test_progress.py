"""The one-line progress text of pack-by-pack commands (check, repair, prune)."""

from __future__ import annotations

import pytest

from p2pbackup.cli.progress import pack_detail


@pytest.mark.parametrize(
    ("frame", "line"),
    [
        ({"packs_checked": 3, "packs": 40}, "checked 3 of 40 packs"),
        ({"packs_repacked": 1, "packs_to_repack": 2}, "repacked 1 of 2 packs"),
        ({"packs_released": 5, "shares_dropped": 48}, "releasing 5 packs, 48 shares dropped"),
        ({"something_else": 1}, "working"),
    ],
)
def test_each_kind_of_frame_reads_as_one_line(frame: dict[str, int], line: str) -> None:
    assert pack_detail(frame) == line
