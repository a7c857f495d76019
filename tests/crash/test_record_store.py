"""Power cuts at every point of a replica storing DHT records: a record acknowledged
(`Stored(True)`) is held after the cut, and the store always opens."""

from __future__ import annotations

from pathlib import Path

from tests.crash.harness import explore
from tests.crash.records import workload


def test_every_crash_state_keeps_acknowledged_records(tmp_path: Path) -> None:
    report = explore(workload(), tmp_path)
    assert report.cuts >= 20 and report.states >= 40, report
    assert not report.failures, "\n".join(report.failures[:10])


def test_normal_sync_loses_an_acknowledged_record(tmp_path: Path) -> None:
    report = explore(workload("NORMAL"), tmp_path, first_failure=True)
    assert report.failures and "lost" in report.failures[0]
