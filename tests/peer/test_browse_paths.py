"""`ls` takes a path as `snapshots` shows the backed-up paths, or as inside the snapshot."""

from __future__ import annotations

import pytest

from p2pbackup.peer.browse import inside_snapshot

ROOTS = ("/home/me/docs", "/srv/photos/")


@pytest.mark.parametrize(
    ("asked", "inside"),
    [
        ("/home/me/docs/taxes", "docs/taxes"),
        ("/home/me/docs", "docs"),
        ("/srv/photos/2024/a.jpg", "photos/2024/a.jpg"),
        ("docs/taxes", "docs/taxes"),
        ("/docs/taxes/", "docs/taxes"),  # under no backed-up path: named inside already
        ("/home/me/docsx", "home/me/docsx"),  # whole names only
        ("", ""),
    ],
)
def test_a_machine_path_is_read_as_the_snapshot_names_it(asked: str, inside: str) -> None:
    assert inside_snapshot(asked, ROOTS) == inside


def test_the_whole_machine_is_saved_as_root() -> None:
    assert inside_snapshot("/etc/hosts", ("/",)) == "root/etc/hosts"
