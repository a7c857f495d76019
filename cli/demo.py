"""`make demo`: the whole mission on loopback, with progress shown.

Starts a mesh of real peer processes on 127.0.0.1, waits until they know
each other, stores a signed record through one peer, kills three peers,
reads the record back through another, and stops everything it started.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from cli.localmesh import LocalMesh

PEERS = 10
KILLED = 3


def main() -> int:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="p2pbackup-demo-") as root:
        mesh = LocalMesh(Path(root), PEERS, serve_args=("--rpc-timeout", "2s"))
        try:
            return _run(console, mesh)
        finally:
            with console.status("stopping every peer"):
                mesh.close()
            console.print("[green]all peers stopped[/]")


def _run(console: Console, mesh: LocalMesh) -> int:
    started = time.monotonic()
    with console.status(f"starting {PEERS} peers on 127.0.0.1"):
        mesh.start()
    console.print(f"[green]✓[/] {PEERS} peer processes listening: {mesh.bootstrap} and others")

    def sizes() -> list[int]:
        return [int(mesh.cli_json(i, "status")["routing_table_size"]) for i in range(PEERS)]

    with console.status("waiting for the peers to find each other"):
        mesh.wait_until(lambda: min(sizes()) == PEERS - 1, timeout=30)
    console.print(f"[green]✓[/] routing tables: {sizes()}")

    written = mesh.cli_json(0, "debug", "record-put", "demo", "hello from peer 0")
    console.print(
        f"[green]✓[/] signed record {written['key'][:16]}… stored on {written['acks']} peers"
    )
    for index in range(1, KILLED + 1):
        mesh.stop_peer(index, signal.SIGKILL)
    console.print(f"[yellow]✗[/] killed peers 1 to {KILLED} with SIGKILL")
    read = mesh.cli_json(PEERS - 1, "debug", "record-get", written["key"])
    ok = read.get("values") == ["hello from peer 0"]
    mark = "[green]✓[/]" if ok else "[red]✗[/]"
    console.print(f"{mark} read back through peer {PEERS - 1}: {read.get('values')}")
    console.print(f"done in {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
