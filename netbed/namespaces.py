"""Network namespaces by name: create, run in, and remove, leftovers included.

Every namespace a testbed makes is named `nb<pid>-<n>-<role>`, where `pid`
is the process that built it: a build first removes the namespaces of
processes that no longer run (a run killed before its teardown), and never
touches those of a live process, so parallel test workers never clash.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

IP = "ip"
PREFIX_STEM = "nb"
_OURS = re.compile(rf"^{PREFIX_STEM}(\d+)-")
# Deadline of one administrative command (ip, nft, sysctl): they take milliseconds.
COMMAND_TIMEOUT = 10.0


class TestbedError(RuntimeError):
    """A command that builds or tears down the testbed failed."""

    __test__ = False  # not a test class, whatever pytest thinks of its name


def run(args: Sequence[str], *, input: str | None = None) -> str:
    """Run one administrative command; its stdout, or TestbedError with its stderr."""
    try:
        done = subprocess.run(
            list(args),
            input=input,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TestbedError(f"{' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        raise TestbedError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def in_ns(ns: str, args: Sequence[str]) -> list[str]:
    """`args` as a command that runs inside namespace `ns` (it execs, so PIDs are the command's)."""
    return [IP, "netns", "exec", ns, *args]


def ip(ns: str, *args: str) -> None:
    run([IP, "-n", ns, *args])


def listed() -> list[str]:
    """The names of every namespace on the machine."""
    out = run([IP, "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def pids_in(ns: str) -> list[int]:
    try:
        out = run([IP, "netns", "pids", ns])
    except TestbedError:
        return []
    return [int(word) for word in out.split() if word.isdigit()]


def remove(ns: str) -> None:
    """Kill what still runs in `ns` (by PID) and delete it; quiet if it is gone already."""
    for pid in pids_in(ns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    try:
        run([IP, "netns", "del", ns])
    except TestbedError:
        if ns in listed():
            raise


def remove_leftovers() -> list[str]:
    """Delete the namespaces and work folders left by testbed builders that no longer
    run; the namespaces' names."""
    gone = []
    for ns in listed():
        if _orphaned(ns):
            remove(ns)
            gone.append(ns)
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX_STEM}*-bed-*"):
        if _orphaned(folder.name):
            shutil.rmtree(folder, ignore_errors=True)
    return gone


def _orphaned(name: str) -> bool:
    """Whether `name` is one of ours, made by a process that no longer runs."""
    match = _OURS.match(name)
    return match is not None and not alive(int(match.group(1)))


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (namespaces are named after their maker's pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
