"""Every timed command of every tool starts from the same state: dirty pages written
out first, then the mesh's processes quiet."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import mesh, rounds
from benchmarks.compare import OURS, Comparison
from benchmarks.rivals import Command, Rival


def test_settle_writes_dirty_pages_out_before_waiting_for_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(mesh.os, "sync", lambda: calls.append("sync"))

    def quiet(_mesh: Any, _log: Any = print) -> bool:
        calls.append("quiet")
        return True

    monkeypatch.setattr(mesh, "wait_for_quiet", quiet)
    assert mesh.settle(object())  # type: ignore[arg-type]
    assert calls == ["sync", "quiet"]


def test_another_tools_timed_backup_is_settled_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(rounds, "settle", lambda _mesh, _log: calls.append("settle"))
    rival = Rival("restic", "restic", "restic 0.14", tmp_path)

    def backup(relative: str) -> Command:
        calls.append(f"backup {relative}")
        return Command(1.0, 0)

    monkeypatch.setattr(rival, "backup", backup)
    comparison = Comparison([OURS, "restic"])
    rounds._step(comparison, None, None, rival, "big_backup", 0, lambda _: None)  # type: ignore[arg-type]
    assert calls == ["settle", "backup big"]
