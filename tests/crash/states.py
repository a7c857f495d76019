"""Every state a disk could be in after a power cut, from a recorded workload.

The persistence model is the one POSIX promises and ext4, XFS and btrfs all keep
(as in the ALICE and CrashMonkey studies), taken at its weakest:

- an fsync or fdatasync of a file makes its earlier writes and truncates durable;
- an fsync of a directory makes its earlier creates, renames, unlinks, mkdirs and
  rmdirs durable (a rename needs the sync of both its directories);
- anything not yet durable may be lost, in any combination and so in any order,
  and a write that survives may be torn: only its first half on disk, or its length
  there but zero-filled (a file grown before its data reached the disk).

For a cut after each operation, the durable operations are replayed and the others
are chosen: every subset when there are at most `EXHAUSTIVE`, else a bounded family
(all kept, all lost, each lost alone, each kept alone). Each write that may be lost
is also torn both ways, once with every other volatile operation kept and once
with every other one lost. States that come out identical are checked once.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.crash.recorder import CHANGES, DIRECTORY_OPS, Op, Recording

EXHAUSTIVE = 8
TORN = ("half", "zeroed")


class Disk:
    """Files as inodes with names, and directories: what replay changes."""

    def __init__(self, recording: Recording) -> None:
        self.inodes = {recording.inos[p]: data for p, data in recording.start.items()}
        self.names = dict(recording.inos)
        self.dirs = set(recording.start_dirs)

    def apply(self, op: Op, tear: str | None = None) -> None:
        """Replay one change; a change whose directory or source is gone is skipped,
        as it could not have reached the disk either."""
        parent = os.path.dirname(op.path)
        if op.kind == "create":
            if parent in self.dirs and op.path not in self.names:
                self.names[op.path] = op.ino
                self.inodes.setdefault(op.ino, b"")
        elif op.kind == "mkdir":
            if parent in self.dirs:
                self.dirs.add(op.path)
        elif op.kind == "rename":
            if op.path in self.names and os.path.dirname(op.target) in self.dirs:
                self.names[op.target] = self.names.pop(op.path)
        elif op.kind == "unlink":
            self.names.pop(op.path, None)
        elif op.kind == "rmdir":
            if not any(n.startswith(op.path + "/") for n in [*self.names, *self.dirs]):
                self.dirs.discard(op.path)
        elif op.kind == "write":
            self._write(op, tear)
        elif op.kind == "truncate":
            data = self.inodes.get(op.ino, b"")
            self.inodes[op.ino] = data[: op.offset].ljust(op.offset, b"\0")

    def _write(self, op: Op, tear: str | None) -> None:
        data = op.data
        if tear == "half":
            data = data[: len(data) // 2]
        elif tear == "zeroed":
            data = bytes(len(data))
        old = self.inodes.get(op.ino, b"").ljust(op.offset, b"\0")
        self.inodes[op.ino] = old[: op.offset] + data + old[op.offset + len(data) :]

    def files(self) -> dict[str, bytes]:
        """What a directory listing would show: each visible name and its bytes."""
        return {
            name: self.inodes.get(ino, b"")
            for name, ino in self.names.items()
            if os.path.dirname(name) in self.dirs
        }

    def digest(self) -> bytes:
        hasher = hashlib.blake2b(digest_size=16)
        for name, data in sorted(self.files().items()):
            hasher.update(b"f%d:%s\0" % (len(data), name.encode()))
            hasher.update(data)
        for name in sorted(self.dirs):
            hasher.update(b"d:%s\0" % name.encode())
        return hasher.digest()

    def materialize(self, target: Path) -> None:
        for name in sorted(self.dirs):
            (target / name).mkdir(parents=True, exist_ok=True)
        for name, data in self.files().items():
            (target / name).write_bytes(data)


def replay(recording: Recording, choice: dict[int, str | None] | None = None) -> Disk:
    """The disk after the operations in `choice` (index: tear or None), or all of them."""
    disk = Disk(recording)
    for i, op in enumerate(recording.ops):
        if op.kind not in CHANGES:
            continue
        if choice is None:
            disk.apply(op)
        elif i in choice:
            disk.apply(op, choice[i])
    return disk


def durable(ops: list[Op], cut: int) -> list[bool]:
    """For each of the first `cut` operations, whether a later sync before the cut
    made it durable."""
    flags = [False] * cut
    synced_files: set[int] = set()
    synced_dirs: set[str] = set()
    for i in range(cut - 1, -1, -1):
        op = ops[i]
        if op.kind == "fsync":
            synced_files.add(op.ino)
        elif op.kind == "dirsync":
            synced_dirs.add(op.path)
        elif op.kind in DIRECTORY_OPS:
            flags[i] = all(d in synced_dirs for d in op.parents())
        elif op.kind in ("write", "truncate"):
            flags[i] = op.ino in synced_files
    return flags


@dataclass(frozen=True)
class CrashState:
    cut: int  # operations that ran before the power went
    acked: tuple[str, ...]  # what the workload had acknowledged by then
    disk: Disk
    how: str  # which volatile operations were lost or torn, for a failure's message


def _choices(volatile: list[int], ops: list[Op]) -> Iterator[tuple[dict[int, str | None], str]]:
    """Which volatile operations survive (and how torn), with a description."""
    everything: dict[int, str | None] = dict.fromkeys(volatile)
    if len(volatile) <= EXHAUSTIVE:
        for keep in itertools.product((True, False), repeat=len(volatile)):
            kept: dict[int, str | None] = {
                i: None for i, k in zip(volatile, keep, strict=True) if k
            }
            yield kept, f"lost {sorted(set(volatile) - set(kept))}"
    else:
        yield everything, "all kept"
        yield {}, "all lost"
        for i in volatile:
            yield dict.fromkeys((j for j in volatile if j != i), None), f"lost {i} alone"
            yield {i: None}, f"kept {i} alone"
    for i in volatile:
        if ops[i].kind == "write" and ops[i].data:
            for tear in TORN:
                yield {**everything, i: tear}, f"{i} {tear}, others kept"
                yield {i: tear}, f"{i} {tear}, others lost"


def crash_states(recording: Recording) -> Iterator[CrashState]:
    """Every distinct state a power cut could leave, at every point of the workload."""
    ops = recording.ops
    seen: set[tuple[bytes, int]] = set()
    for cut in range(len(ops) + 1):
        flags = durable(ops, cut)
        base = {i: None for i in range(cut) if flags[i] and ops[i].kind in CHANGES}
        volatile = [i for i in range(cut) if not flags[i] and ops[i].kind in CHANGES]
        acked = tuple(op.path for op in ops[:cut] if op.kind == "ack")
        for choice, how in _choices(volatile, ops):
            disk = replay(recording, {**base, **choice})
            key = (disk.digest(), len(acked))
            if key in seen:
                continue
            seen.add(key)
            yield CrashState(cut, acked, disk, how)
