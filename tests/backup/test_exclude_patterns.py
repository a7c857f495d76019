"""`--exclude` as restic reads it: a name, the end of a path in whole names, or (with a
leading slash) the whole path; the path `ls` and `--include` show (docs/sub) matched
nothing before."""

from __future__ import annotations

import pytest

from p2pbackup.backup.walk import is_excluded

PATH = b"/home/me/data/docs/sub"


@pytest.mark.parametrize(
    ("pattern", "excluded"),
    [
        ("sub", True),
        ("s*b", True),
        ("sub/", True),  # a trailing slash: a folder, as people write it
        ("docs/sub", True),
        ("data/docs/sub", True),
        ("d*/sub", True),
        ("**/sub", True),
        ("/home/me/data/docs/sub", True),
        ("/home/*/data/docs/sub", True),
        ("/docs/sub", False),  # anchored: only a path that begins so
        ("ocs/sub", False),  # names are whole
        ("docs", False),  # the parent is matched when the walk meets it, not here
        ("sub/x", False),
        ("other", False),
    ],
)
def test_a_pattern_matches_a_name_a_path_end_or_a_whole_path(pattern: str, excluded: bool) -> None:
    assert is_excluded(PATH, (pattern,)) is excluded


def test_several_patterns_and_none() -> None:
    assert is_excluded(PATH, ("*.tmp", "docs/sub"))
    assert not is_excluded(PATH, ())
