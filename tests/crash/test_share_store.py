"""Power cuts at every point of a share put, a lease renewal and a replacement: what a
sender was told is stored survives, nothing rotten is served, and the store opens.

On the code before durable acknowledgements (synchronous=NORMAL, reconcile deleting
files it had no row for) every one of these workloads fails crash states; the tests
below that run NORMAL, or recovery without its header check, keep showing that the
states checked here are ones that catch a broken store."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pbackup.store import framing
from tests.crash.harness import explore
from tests.crash.shares import workload


@pytest.mark.parametrize("name", ["put", "first-put", "renew", "replace"])
def test_every_crash_state_keeps_what_was_acknowledged(name: str, tmp_path: Path) -> None:
    report = explore(workload(name), tmp_path)
    # Every cut point was visited; most collapse onto the same few disk states.
    assert report.states >= 40, report
    assert not report.failures, "\n".join(report.failures[:10])


def test_normal_sync_loses_an_acknowledged_renewal(tmp_path: Path) -> None:
    """A renewal changes only the row: with NORMAL it is acknowledged before it is durable."""
    report = explore(workload("renew", "NORMAL"), tmp_path, first_failure=True)
    assert report.failures and "lease 10 < acknowledged 20" in report.failures[0]


def test_deleting_files_that_verify_loses_a_held_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replacement cut between its file and its row: a reconcile that cannot vouch for
    the file deletes it, and the share the holder had acknowledged is gone."""
    monkeypatch.setattr(framing, "verified", lambda key, blob: None)
    report = explore(workload("replace"), tmp_path, first_failure=True)
    assert report.failures and "neither the held share" in report.failures[0]
