"""`make demo`: the whole mission on loopback, with progress shown.

Ten peer processes on 127.0.0.1 pool their disks. Peer 0's owner backs up a
real folder that ships with the machine, then backs it up again (nothing to
send). Then the owner's machine dies with two other peers. On a new machine
(a new home) the owner types the recovery phrase, joins the mesh, restores
the latest snapshot and the demo checks it byte for byte against the
original. Everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from p2pbackup.base.sizes import format_size
from p2pbackup.cli.localmesh import CLI, LocalMesh

PEERS = 10
KILLED = (0, 4, 7)  # the owner's own machine and two more


def default_source() -> Path:
    """A real folder on every machine with Python: its standard library."""
    include = Path("/usr/include")
    if include.is_dir():
        return include
    return Path(sysconfig.get_paths()["stdlib"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=default_source())
    parser.add_argument("--keep", action="store_true", help="keep the mesh's files afterwards")
    options = parser.parse_args(argv)
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="p2pbackup-demo-"))
    mesh = LocalMesh(root / "mesh", PEERS, serve_args=("--rpc-timeout", "3s"))
    try:
        return _run(console, mesh, options.source.resolve(), root)
    finally:
        with console.status("stopping every peer"):
            mesh.close()
        console.print("[green]✓[/] all peers stopped")
        if not options.keep:
            subprocess.run(["rm", "-rf", str(root)], check=False)


def _step(console: Console, text: str) -> None:
    console.print(f"[green]✓[/] {text}")


def _run(console: Console, mesh: LocalMesh, source: Path, root: Path) -> int:
    started = time.monotonic()
    console.rule("[bold]p2pbackup demo")
    phrase = _start_mesh(console, mesh)
    _back_up_twice(console, mesh, source)
    _kill_the_owners_machine(console, mesh)
    fresh = _recover(console, mesh, phrase)
    if fresh is None:
        return 1
    target = root / "restored"
    if not _restore(console, mesh, fresh, target):
        return 1
    return _compare(console, source, target / source.name, started)


def _start_mesh(console: Console, mesh: LocalMesh) -> str:
    """Make the owner's home and start every peer; the owner's recovery phrase."""
    owner = mesh.cli_json(0, "init")
    phrase: str = owner["recovery_phrase"]
    _step(console, f"owner home created; recovery phrase: [italic]{phrase[:28]}…[/]")
    with console.status(f"starting {PEERS} peers on 127.0.0.1"):
        mesh.start()
        mesh.wait_until(
            lambda: all(
                mesh.control(i, "status")["routing_table_size"] == PEERS - 1 for i in range(PEERS)
            ),
            timeout=30,
        )
    _step(console, f"{PEERS} peer processes know each other (bootstrap {mesh.bootstrap})")
    return phrase


def _back_up_twice(console: Console, mesh: LocalMesh, source: Path) -> None:
    console.print(f"backing up [bold]{source}[/] through peer 0 …")
    first = _timed_cli(mesh, 0, "backup", str(source))
    console.print(f"  {first.stdout.strip()}")
    again = mesh.cli_json(0, "backup", str(source))
    _step(
        console,
        f"second backup: {again['files_unchanged']} of {again['files']} files unchanged, "
        f"{format_size(again['bytes_sent'])} sent",
    )


def _kill_the_owners_machine(console: Console, mesh: LocalMesh) -> None:
    for index in KILLED:
        mesh.stop_peer(index, signal.SIGKILL)
    console.print(
        f"[yellow]✗[/] killed peers {', '.join(map(str, KILLED))} with SIGKILL "
        "(peer 0 was the owner's machine)"
    )


def _recover(console: Console, mesh: LocalMesh, phrase: str) -> int | None:
    """A new machine joins with the phrase alone; its peer's index, or None if it failed."""
    survivor = next(p for p in mesh.peers if p.alive)
    fresh = mesh.add_peer()
    recovered = mesh.cli(fresh.index, "init", "--recover", "--json", stdin=phrase)
    if recovered.returncode != 0:
        console.print(f"[red]✗ recovery failed: {recovered.stderr.strip()}")
        return None
    mesh.start_peer(fresh.index, bootstrap=survivor.listen)
    mesh.wait_until(
        lambda: mesh.control(fresh.index, "status")["routing_table_size"] >= PEERS - len(KILLED),
        timeout=30,
    )
    _step(console, "a new machine joined with nothing but the recovery phrase")
    listing = mesh.cli_json(fresh.index, "snapshots")["snapshots"]
    _step(console, f"it sees the owner's {len(listing)} snapshots")
    return fresh.index


def _restore(console: Console, mesh: LocalMesh, index: int, target: Path) -> bool:
    console.print(f"restoring the latest snapshot into {target} …")
    restored = _timed_cli(mesh, index, "restore", "latest", "--target", str(target))
    console.print(f"  {restored.stdout.strip()}")
    if restored.returncode != 0:
        console.print(f"[red]✗ restore failed: {restored.stderr.strip()}")
        return False
    return True


def _compare(console: Console, source: Path, copy: Path, started: float) -> int:
    """Compare the restored tree with the original, print the summary; the exit status."""
    with console.status("comparing every file byte for byte"):
        files, size, problems = compare_trees(source, copy)
    table = Table(title="summary", show_header=False)
    table.add_row("source", str(source))
    table.add_row("files compared", f"{files:,}")
    table.add_row("bytes compared", format_size(size))
    table.add_row("peers killed", f"{len(KILLED)} of {PEERS}, the owner's machine among them")
    table.add_row("differences", str(len(problems)))
    table.add_row("wall time", f"{time.monotonic() - started:.1f}s")
    console.print(table)
    for problem in problems[:10]:
        console.print(f"[red]  {problem}")
    if problems:
        console.print("[red]✗ the restored tree differs from the original")
        return 1
    _step(console, "restored tree is identical to the original")
    return 0


def _timed_cli(mesh: LocalMesh, index: int, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command with its progress bar on this terminal and its summary captured."""
    return subprocess.run(
        [*CLI, "--home", str(mesh.peers[index].home), *args],
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        check=False,
    )


def compare_trees(original: Path, copy: Path) -> tuple[int, int, list[str]]:
    """Files compared, bytes compared, and every difference found."""
    files = size = 0
    problems: list[str] = []
    for dirpath, dirnames, filenames in os.walk(original):
        relative = Path(dirpath).relative_to(original)
        for name in dirnames + filenames:
            a, b = Path(dirpath) / name, copy / relative / name
            try:
                sa, sb = a.lstat(), b.lstat()
            except FileNotFoundError:
                problems.append(f"missing: {relative / name}")
                continue
            if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
                problems.append(f"type differs: {relative / name}")
            elif stat.S_ISLNK(sa.st_mode):
                if os.readlink(a) != os.readlink(b):
                    problems.append(f"link target differs: {relative / name}")
            elif stat.S_ISREG(sa.st_mode):
                files += 1
                size += sa.st_size
                if a.read_bytes() != b.read_bytes():
                    problems.append(f"content differs: {relative / name}")
                elif sa.st_mtime_ns // 1000 != sb.st_mtime_ns // 1000:
                    problems.append(f"mtime differs: {relative / name}")
            if not stat.S_ISLNK(sa.st_mode) and sa.st_mode != sb.st_mode:
                problems.append(f"mode differs: {relative / name}")
    return files, size, problems


if __name__ == "__main__":
    sys.exit(main())
