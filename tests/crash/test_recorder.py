"""The recorder and the replay are only worth their crash states if replaying a whole
recording rebuilds exactly the directory the workload left."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.crash import shares
from tests.crash.harness import assert_replay_is_faithful
from tests.crash.recorder import record
from tests.crash.states import durable


def _recorded(tmp_path: Path):  # type: ignore[no-untyped-def]
    start = tmp_path / "start"
    start.mkdir()
    shares.prepare(start)
    return record(shares.workload("put").script, start, tmp_path / "run")


def test_replaying_a_recording_gives_the_real_directory(tmp_path: Path) -> None:
    recording = _recorded(tmp_path)
    kinds = [op.kind for op in recording.ops]
    # A new share put: its file written under its own name and synced, its directory
    # synced; the index row in SQLite's log, synced; then the acknowledgement.
    for kind in ("create", "write", "fsync", "dirsync", "mkdir", "ack"):
        assert kind in kinds, kind
    assert [op.path for op in recording.ops if op.kind == "ack"] == ["new0", "new1"]
    assert_replay_is_faithful(recording)
    # Everything before the last acknowledgement is durable by then.
    last_ack = max(i for i, k in enumerate(kinds) if k == "ack")
    flags = durable(recording.ops, last_ack)
    assert all(f for f, op in zip(flags, recording.ops, strict=False) if op.kind == "write")


def test_a_recording_missing_a_write_is_caught(tmp_path: Path) -> None:
    recording = _recorded(tmp_path)
    first = next(i for i, op in enumerate(recording.ops) if op.kind == "write")
    ops = recording.ops[:first] + recording.ops[first + 1 :]
    with pytest.raises(AssertionError, match="replay disagrees"):
        assert_replay_is_faithful(dataclasses.replace(recording, ops=ops))
