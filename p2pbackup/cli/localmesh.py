"""A mesh of real peer processes on loopback, for the demo, benchmarks and tests.

Each peer is a separate `p2pbackup serve` process with its own home under
one root directory. The first peer founds the mesh and listens on an
OS-chosen port, which it writes to its state file; the others join with its
invite and bootstrap through it. `close` stops every process it started,
politely first.

Waiting is by event: a wait polls the peers' own state (their state files,
their control sockets) until the condition holds. Its deadline is only a
safety net against a hung mesh; how long something took is for the caller
to measure and judge.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

CLI = [sys.executable, "-m", "p2pbackup.cli.app"]
# Seconds any one wait may take before the mesh is taken for hung. Generous on purpose:
# a loaded machine slows peers down, and a slow peer is not a broken one.
SAFETY_DEADLINE = 120.0
# Seconds between two looks at a peer's state while waiting.
POLL_STEP = 0.05


@dataclass
class LocalPeer:
    index: int
    home: Path
    process: subprocess.Popen[bytes] | None = None
    listen: str | None = None
    recovery_phrase: str | None = None  # as `init` showed it, kept for recovery tests

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalMesh:
    root: Path
    size: int
    host: str = "127.0.0.1"
    serve_args: Sequence[str] = ()
    # Port mapping and LAN discovery: only where the mesh has a network of its own.
    find_routers_and_neighbours: bool = False
    # An open mesh admits anyone; a private one (the default) only members by invite.
    open_mesh: bool = False
    peers: list[LocalPeer] = field(default_factory=list)
    # When the peers after the first were launched (monotonic clock).
    launched_at: float = 0.0
    # The founder runs since `init_all` started it to invite the others.
    _founder_for_invites: bool = False

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.peers = [LocalPeer(i, self.root / f"peer{i:02d}") for i in range(self.size)]

    # ---- lifecycle -----------------------------------------------------

    def init_all(self) -> None:
        """Make every home not made yet. In a private mesh (the default) the first peer
        founds it and the others join with one invite of the first, which is started
        for that (and left running: `start` goes on from there)."""
        fresh = [p for p in self.peers if not (p.home / "node.key").exists()]
        if self.open_mesh:
            for peer in fresh:
                self._init(peer.index, "--open-mesh")
            return
        founder = self.peers[0]
        if founder in fresh:
            self._init(0)
            fresh.remove(founder)
        if not fresh:
            return
        if not founder.alive:
            self.start_peer(0, bootstrap=None)
            self._founder_for_invites = True
        code = self.invite(uses=len(fresh))
        for peer in fresh:
            self._init(peer.index, "--join", code)

    def _init(self, index: int, *args: str) -> None:
        shown = self.cli_json(index, "init", *args)
        self.peers[index].recovery_phrase = shown.get("recovery_phrase")

    def invite(self, uses: int = 1, expires: str = "1h") -> str:
        """An invite code of the founder (the first peer, running)."""
        made = self.cli_json(0, "invite", "--uses", str(uses), "--expires", expires)
        return str(made["code"])

    def add_peer(self) -> LocalPeer:
        """A new home beside the others (not initialised, not started)."""
        peer = LocalPeer(len(self.peers), self.root / f"peer{len(self.peers):02d}")
        self.peers.append(peer)
        self.size = len(self.peers)
        return peer

    def start(self, timeout: float = SAFETY_DEADLINE) -> None:
        self.init_all()
        self.start_peer(0, bootstrap=None, timeout=timeout)
        self.launched_at = time.monotonic()
        for peer in self.peers[1:]:
            self.start_peer(peer.index, timeout=timeout, wait=False)
        for peer in self.peers[1:]:
            self.wait_listening(peer.index, timeout)

    @property
    def bootstrap(self) -> str:
        listen = self.peers[0].listen
        if listen is None:
            raise RuntimeError("the bootstrap peer is not running")
        return listen

    def start_peer(
        self,
        index: int,
        *,
        bootstrap: str | bool | None = True,
        timeout: float = SAFETY_DEADLINE,
        wait: bool = True,
        port: int = 0,
    ) -> LocalPeer:
        peer = self.peers[index]
        if index == 0 and self._founder_for_invites:
            self._founder_for_invites = False
            if bootstrap in (None, False) and port == 0 and peer.alive:
                return peer  # started as asked already, to invite the others
            self.stop_peer(0)
        # Every peer here shares one host: each must count as its own address block, or
        # the per-network limits (decision 0023) would take the mesh for one flood.
        args = ["serve", "--listen", self.listen_address(index, port)]
        args += ["--exempt-blocks", "loopback"]
        if not self.find_routers_and_neighbours:
            # Peers on loopback have no router to map a port on and no LAN to announce
            # on; a wildcard listener must not reach the machine's real network either.
            args += ["--no-port-mapping", "--no-lan-discovery"]
        args += self.serve_args
        if bootstrap is True:
            args += ["--bootstrap", self.bootstrap]
        elif isinstance(bootstrap, str):
            args += ["--bootstrap", bootstrap]
        peer.home.mkdir(parents=True, exist_ok=True)
        log = open(peer.home / "serve.log", "ab")  # noqa: SIM115 - owned by the child
        peer.process = subprocess.Popen(
            [*self.command_prefix(index), *CLI, "--home", str(peer.home), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the parent only
        )
        log.close()
        if wait:
            self.wait_listening(index, timeout)
        return peer

    def command_prefix(self, index: int) -> list[str]:
        """What runs peer `index`'s commands where it lives (a network namespace)."""
        return []

    def listen_address(self, index: int, port: int) -> str:
        return f"{self.host}:{port}"

    def wait_listening(self, index: int, timeout: float = SAFETY_DEADLINE) -> str:
        """The peer's address, once its state file says it listens (written only then)."""
        peer = self.peers[index]
        state_file = peer.home / "peer.json"

        def listening() -> bool:
            if peer.process is not None and peer.process.poll() is not None:
                raise RuntimeError(f"peer {index} exited early:\n{self.log_tail(index)}")
            try:
                state = json.loads(state_file.read_text())
            except (FileNotFoundError, ValueError):
                return False
            # A state file a killed peer left names its pid, not this process's.
            if peer.process is not None and state.get("pid") != peer.process.pid:
                return False
            peer.listen = str(state["listen"])
            return True

        self.wait_for(f"peer {index} listening", listening, deadline=timeout)
        assert peer.listen is not None
        return peer.listen

    def stop_peer(self, index: int, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Stop one peer with `sig` (SIGKILL for a crash); its exit status."""
        peer = self.peers[index]
        if peer.process is None:
            return 0
        if peer.process.poll() is None:
            peer.process.send_signal(sig)
        try:
            code = peer.process.wait(timeout)
        except subprocess.TimeoutExpired:
            peer.process.kill()
            code = peer.process.wait()
        peer.process = None
        return code

    def close(self) -> None:
        for peer in self.peers:
            if peer.alive and peer.process is not None:
                peer.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for peer in self.peers:
            if peer.process is None:
                continue
            try:
                peer.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(peer.process.pid, signal.SIGKILL)
                peer.process.wait()
            peer.process = None

    def __enter__(self) -> LocalMesh:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- talking to peers ---------------------------------------------

    def cli(
        self,
        index: int,
        *args: str,
        check: bool = False,
        stdin: str | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.command_prefix(index), *CLI, "--home", str(self.peers[index].home), *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"p2pbackup {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def cli_json(self, index: int, *args: str, stdin: str | None = None) -> dict[str, Any]:
        result = self.cli(index, *args, "--json", check=True, stdin=stdin)
        value = json.loads(result.stdout)
        assert isinstance(value, dict)
        return value

    def control(self, index: int, op: str, **args: Any) -> dict[str, Any]:
        """One control call straight to a peer's socket: no process start, for tight polling."""
        import trio

        from p2pbackup.peer.control import call
        from p2pbackup.peer.home import Home

        path = Home(self.peers[index].home).control_socket
        return trio.run(call, path, op, args)

    def status(self, index: int) -> dict[str, Any]:
        """The peer's own account of itself, as `status --json` gives it."""
        return self.control(index, "status")

    def wait_until(self, predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
        """Whether `predicate` came to hold within `timeout` seconds."""
        return _poll(predicate, timeout, step) is not None

    def wait_for(
        self,
        what: str,
        condition: Callable[[], bool],
        *,
        step: float = POLL_STEP,
        deadline: float = SAFETY_DEADLINE,
    ) -> float:
        """Poll `condition` until it holds; the monotonic time it was first seen to.

        Past the safety deadline the mesh is taken for hung: `TimeoutError` names
        `what` and shows the logs of any peer that died meanwhile."""
        seen = _poll(condition, deadline, step)
        if seen is None:
            dead = [p.index for p in self.peers if p.process is not None and not p.alive]
            logs = "".join(f"\npeer {i}:\n{self.log_tail(i)}" for i in dead)
            raise TimeoutError(f"{what}: not so after {deadline:g}s{logs}")
        return seen

    def wait_for_tables(
        self,
        at_least: int | None = None,
        indices: Iterable[int] | None = None,
        step: float = 0.1,
    ) -> float:
        """Until each of these peers (every running one by default) has `at_least` others
        in its routing table (every other peer of the mesh by default); when that was seen."""
        chosen = [p.index for p in self.peers if p.alive] if indices is None else list(indices)
        wanted = self.size - 1 if at_least is None else at_least

        def full() -> bool:
            return all(self.status(i)["routing_table_size"] >= wanted for i in chosen)

        return self.wait_for(f"routing tables of peers {chosen} holding {wanted}", full, step=step)

    def log_tail(self, index: int, lines: int = 20) -> str:
        try:
            text = (self.peers[index].home / "serve.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _poll(condition: Callable[[], bool], timeout: float, step: float) -> float | None:
    """The monotonic time `condition` was first seen to hold, looking every `step`
    seconds; None if it still did not at the end of `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        if condition():
            return time.monotonic()
        if time.monotonic() >= end:
            return None
        time.sleep(step)
