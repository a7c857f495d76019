"""Simulated meshes for tests: real peers, virtual time, seeded."""

from __future__ import annotations

import pytest

from p2pbackup.simulations.runner import pin_trio_scheduler


@pytest.fixture(autouse=True)
def _seeded_scheduler() -> None:
    # Runs before pytest-trio starts the loop, so the event order is reproducible.
    pin_trio_scheduler(1234)
