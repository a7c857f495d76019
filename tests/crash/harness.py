"""Run a workload under the recorder, build every crash state, and check each one.

A workload is four things: how to lay out the directory it starts from, the Python
it runs on that directory (printing `ACK <label>` through `ack` after each
acknowledgement), and a check that opens the directory and asserts what the labels
acknowledged is there and nothing corrupt is served. Adding a store is a few lines.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.crash.recorder import Recording, record
from tests.crash.states import CrashState, crash_states, replay


def ack(label: str) -> None:
    """Tell the recorder, in one `write`, that `label` was just acknowledged."""
    os.write(1, f"ACK {label}\n".encode())


@dataclass(frozen=True)
class Workload:
    name: str
    prepare: Callable[[Path], None]  # lay out the starting directory
    script: str  # Python run in a child; sys.argv[1] is the directory
    check: Callable[[Path, tuple[str, ...]], None]  # raise when a state breaks a promise


@dataclass
class Report:
    ops: int
    cuts: int
    states: int = 0
    failures: list[str] = field(default_factory=list)


def assert_replay_is_faithful(recording: Recording) -> None:
    """Replaying every operation onto the start must give exactly the directory the
    workload left: otherwise the recorder missed or misread a call."""
    disk = replay(recording)
    assert disk.files() == recording.final, "replay disagrees with the real files"
    assert disk.dirs == recording.final_dirs, "replay disagrees with the real directories"


@contextlib.contextmanager
def _scratch(tmp: Path) -> Iterator[Path]:
    """Where crash states are laid out: memory when there is a tmpfs, since opening a
    store syncs its directory and a real disk would make that the test's whole cost."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp
    scratch = Path(tempfile.mkdtemp(prefix="crash-states-", dir=base))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def explore(workload: Workload, tmp: Path, *, first_failure: bool = False) -> Report:
    """Record `workload`, then check it on every crash state; failures are collected
    (or, with `first_failure`, the first one ends the search)."""
    start = tmp / "start"
    start.mkdir()
    workload.prepare(start)
    recording = record(workload.script, start, tmp / "run")
    assert_replay_is_faithful(recording)
    report = Report(ops=len(recording.ops), cuts=len(recording.ops) + 1)
    with _scratch(tmp) as scratch:
        for state in crash_states(recording):
            _check(workload, recording, state, scratch / f"state{report.states}", report)
            if first_failure and report.failures:
                break
    return report


def _check(
    workload: Workload, recording: Recording, state: CrashState, target: Path, report: Report
) -> None:
    """Lay out one crash state, check it, and note a failure with how it came about."""
    target.mkdir()
    state.disk.materialize(target)
    report.states += 1
    try:
        workload.check(target, state.acked)
    except Exception as exc:
        op = recording.ops[state.cut - 1] if state.cut else None
        report.failures.append(
            f"power cut after op {state.cut} ({op and op.kind} {op and op.path}), "
            f"{state.how}, acknowledged {state.acked}: {exc!r}"
        )
    shutil.rmtree(target)
