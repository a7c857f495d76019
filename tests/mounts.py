"""Small tmpfs mounts for tests: a read-only folder even root cannot write in, for
unwritable restore targets, and a small disk that fills, for full-disk holders."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """`folder`, made and mounted as an empty tmpfs with `options` until the block ends;
    the test is skipped, with the reason, where mounting is not allowed."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def read_only(folder: Path) -> contextlib.AbstractContextManager[Path]:
    return tmpfs(folder, "ro,size=1m")
