"""restic and borg, run the way a user would run them, on the bench's data.

Each gets a repository of its own in the run folder (a fresh one every round,
so its first backup is a first backup), its password in the environment (no
prompt), its default compression and its default cache, the cache kept in the
run folder rather than in this user's home. A command is timed like ours: the
wall time around the whole process, from its start to its exit, read from
this process. Nothing is ever downloaded: a tool that is not on PATH is
skipped, and the bench says so and how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = "apt install restic borgbackup"
PASSWORD = "bench-only-password"


@dataclass
class Command:
    """One timed command: wall seconds and how it ended."""

    seconds: float
    returncode: int
    stderr: str = ""
    cpu_seconds: float = 0.0


@dataclass
class Rival:
    """One other backup tool: where its repository and cache are, and its commands."""

    name: str  # "restic" or "borg"
    binary: str
    version: str
    folder: Path  # the run folder; backups read paths relative to it
    repo: Path = field(init=False)
    archives: int = 0

    def __post_init__(self) -> None:
        self.repo = self.folder / f"{self.name}-repo"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.name == "restic":
            env["RESTIC_PASSWORD"] = PASSWORD
            env["RESTIC_CACHE_DIR"] = str(self.folder / "restic-cache")
        else:
            env["BORG_PASSPHRASE"] = PASSWORD
            env["BORG_BASE_DIR"] = str(self.folder / "borg-base")  # cache, security, keys
        return env

    def run(self, args: list[str], cwd: Path) -> Command:
        """Run one command; its CPU comes from its own exit (`wait4`), so nothing else
        this process started is counted in. (Not its peak memory: Linux counts the
        forked copy of this process, before the exec, in the child's `ru_maxrss`.)"""
        with tempfile.TemporaryFile() as errors:
            started = time.perf_counter()
            child = subprocess.Popen(
                [self.binary, *args],
                cwd=cwd,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - started
            child.returncode = os.waitstatus_to_exitcode(status)
            errors.seek(0)
            text = errors.read().decode(errors="replace")
        cpu = usage.ru_utime + usage.ru_stime
        command = Command(seconds, child.returncode, text, cpu)
        if child.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)} failed: {text[-2000:]}")
        return command

    def fresh_repo(self) -> None:
        """Remove the last round's repository (and cache) and make a new one, untimed."""
        self.drop_repo()
        if self.name == "restic":
            self.run(["-r", str(self.repo), "init"], self.folder)
        else:
            self.run(["init", "--encryption", "repokey", str(self.repo)], self.folder)

    def drop_repo(self) -> None:
        for path in (self.repo, self.folder / "restic-cache", self.folder / "borg-base"):
            shutil.rmtree(path, ignore_errors=True)
        self.archives = 0

    def backup(self, relative: str) -> Command:
        """Back up `relative` (a folder in the run folder), read from the run folder."""
        if self.name == "restic":
            return self.run(["-r", str(self.repo), "backup", "--quiet", relative], self.folder)
        self.archives += 1
        archive = f"{self.repo}::a{self.archives}"
        return self.run(["create", archive, relative], self.folder)

    def restore(self, target: Path) -> Command:
        """Restore the latest snapshot (archive) into the new folder `target`."""
        target.mkdir(parents=True)
        if self.name == "restic":
            args = ["-r", str(self.repo), "restore", "latest", "--target", str(target)]
            return self.run(args, self.folder)
        return self.run(["extract", f"{self.repo}::a{self.archives}"], target)

    def restored(self, target: Path, relative: str) -> Path:
        """Where `relative` landed under `target`: both keep the path as given."""
        return target / relative

    def describe(self) -> str:
        if self.name == "restic":
            return f"{self.version}: repository format 2 (its default; compression auto), cache on"
        return f"{self.version}: --encryption repokey, default compression (lz4), cache on"


def find_rivals(folder: Path) -> tuple[list[Rival], list[str]]:
    """The tools on PATH, and a line for each one skipped."""
    found: list[Rival] = []
    skipped: list[str] = []
    for name, binary, flag in (("restic", "restic", "version"), ("borg", "borg", "--version")):
        path = shutil.which(binary)
        if path is None:
            skipped.append(f"{name}: not on PATH, its rows are skipped (install: {INSTALL_HINT})")
            continue
        try:
            out = subprocess.run(
                [path, flag], capture_output=True, text=True, timeout=30, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError) as error:
            skipped.append(f"{name}: {path} does not run ({error}), its rows are skipped")
            continue
        found.append(Rival(name, path, " ".join(out.split()[:2]), folder))
    return found, skipped
