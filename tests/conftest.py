"""How `make test` shares two cores: tests that run meshes of real peer processes
go to one worker, one after another, so two twelve-process meshes never compete for
the same cores; everything else is spread over the workers beside them."""

from __future__ import annotations

from pathlib import Path

import pytest

_PROCESS_TESTS = Path(__file__).parent / "peer"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _PROCESS_TESTS in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("processes"))
