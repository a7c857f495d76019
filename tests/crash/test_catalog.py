"""Power cuts at every point of a backup committing its packs to the owner's catalog:
a pack whose commit returned is known after the cut, with every chunk, and a pack
still being committed is known whole or not at all."""

from __future__ import annotations

from pathlib import Path

from tests.crash.catalog import synced_once_workload, workload
from tests.crash.harness import explore


def test_every_crash_state_keeps_acknowledged_packs(tmp_path: Path) -> None:
    report = explore(workload(), tmp_path)
    assert report.states >= 500, report
    assert not report.failures, "\n".join(report.failures[:10])


def test_normal_sync_loses_an_acknowledged_pack(tmp_path: Path) -> None:
    report = explore(workload("NORMAL"), tmp_path, first_failure=True)
    assert report.failures and "acknowledged pack 0 lost" in report.failures[0]


def test_commits_synced_once_keep_a_prefix_and_all_once_synced(tmp_path: Path) -> None:
    report = explore(synced_once_workload(), tmp_path)
    assert report.states >= 100, report
    assert not report.failures, "\n".join(report.failures[:10])
