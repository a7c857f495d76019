"""Real `p2pbackup serve` processes on testbed hosts, and waiting for their state."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from netbed import Host
from tests.netbed.conftest import code_env

CLI = [sys.executable, "-m", "p2pbackup.cli.app"]
# A generous bound on waiting for a state that normally comes in a second or two.
PATIENCE = 30.0
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], patience: float = PATIENCE) -> T:
    """The first truthy answer of `probe`, polled; AssertionError naming `what` if none
    comes within `patience` seconds (a bound for a broken run, not a measurement)."""
    end = time.monotonic() + patience
    while True:
        answer = probe()
        if answer:
            return answer
        assert time.monotonic() < end, f"still waiting for {what}"
        time.sleep(0.1)


class ServePeer:
    """One home on a testbed host and the `serve` that runs it."""

    def __init__(self, host: Host, home: Path, port: int, *serve_args: str) -> None:
        self.host = host
        self.home = home
        self.port = port
        self.log = home.with_suffix(".log")
        done = self.cli("init", "--peer-only", "--open-mesh", "--json")
        self.node_id: str = json.loads(done.stdout)["node_id"]
        with self.log.open("ab") as log:
            listen = f"{host.address}:{port}"
            command = [*CLI, "--home", str(home), "serve", "--listen", listen, *serve_args]
            self.process = host.spawn(command, env=code_env(), stderr=log)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # The control socket is a file: the CLI reaches it from any namespace.
        return subprocess.run(
            [*CLI, "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            check=check,
            env=code_env(),
            timeout=60,
        )

    def status(self) -> dict[str, Any] | None:
        """The running peer's status, or None while it does not answer."""
        done = self.cli("status", "--json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def mapping(self) -> dict[str, Any] | None:
        status = self.status()
        return None if status is None else status.get("port_mapping")

    def log_text(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=30)


def ping(source: Host, host: str, port: int, timeout: float = 10.0) -> str | None:
    """The node id a peer at `host`:`port` proves to `source`, or None."""
    answer = dial(source, host, port, timeout)
    return None if answer is None else answer[0]


def dial(source: Host, host: str, port: int, timeout: float = 10.0) -> list[str] | None:
    """The node id a peer at `host`:`port` proves to `source`, then the routes it
    advertises; None if it cannot be reached."""
    done = source.run(
        [sys.executable, "-m", "tests.netbed.dial", source.address, host, str(port), str(timeout)],
        check=False,
        env=code_env(),
    )
    return done.stdout.split() if done.returncode == 0 else None


def unreachable(source: Host, host: str, port: int) -> bool:
    """Whether no peer answers `source` at `host`:`port` within a second (a router
    drops what it does not forward, so a refusal is a silence)."""
    return ping(source, host, port, timeout=1.0) is None
