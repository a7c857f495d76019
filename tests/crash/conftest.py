"""Crash-state tests need strace to record what a workload does to the disk."""

from __future__ import annotations

import os

import pytest

from tests.crash.recorder import STRACE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.access(STRACE, os.X_OK):
        return
    skip = pytest.mark.skip(reason=f"strace not found at {STRACE}: apt-get install strace")
    for item in items:
        if "tests/crash" in str(item.path):
            item.add_marker(skip)
