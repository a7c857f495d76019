"""LAN discovery between real peer processes on a LAN made of network namespaces.

Three peers started with no `--bootstrap` on one LAN find each other by mDNS
alone; two started with `--no-lan-discovery` are found by nobody and find
nobody. Two forged announcements stand beside them: one names another mesh's
tag (ignored before any dial), one names an id the peer at its address
cannot prove (dialled once, refused by the handshake, never added).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pbackup.peer.control import call
from p2pbackup.peer.home import Home
from tests.net.lan_bridge import LanBridge

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CLI = [sys.executable, "-m", "p2pbackup.cli.app"]
PORT = 7400
FINDERS = (0, 1, 2)  # LAN discovery on
HIDDEN = (3, 4)  # --no-lan-discovery
WILDCARD = 2
SAFETY = 90.0  # a hung mesh, not a slow one
# python-zeroconf announcing a forged record: the peer's own code, given another tag or id.
_ANNOUNCE = """
import logging, sys, trio
from p2pbackup.net.lan_discovery import LanDiscovery
logging.basicConfig(level="INFO")
node_id, host, port, tag = bytes.fromhex(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
trio.run(LanDiscovery(node_id, (host, port), tag, lambda finding: None).run)
"""


@pytest.fixture
def lan() -> Iterator[LanBridge]:
    bridge = LanBridge.open(5)
    with bridge:
        yield bridge


def _home(root: Path, index: int) -> Path:
    return root / f"peer{index}"


def _init(home: Path) -> str:
    done = subprocess.run(
        [*CLI, "--home", str(home), "init", "--peer-only", "--open-mesh", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return str(json.loads(done.stdout)["node_id"])


def _serve(lan: LanBridge, home: Path, index: int, *extra: str) -> subprocess.Popen[Any]:
    # One finder listens on every interface: it announces its LAN address, not 0.0.0.0.
    host = "0.0.0.0" if index == WILDCARD else lan.address(index)
    args = ["--listen", f"{host}:{PORT}", "--exempt-blocks", "lan"]
    args += ["--log-level", "debug", "--log-file", str(home / "serve.log"), *extra]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    return lan.popen(
        index,
        [*CLI, "--home", str(home), "serve", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )


def _wait(what: str, condition: Callable[[], bool]) -> float:
    """Poll until `condition` holds; when it first did (monotonic)."""
    end = time.monotonic() + SAFETY
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not so after {SAFETY:g}s")
        time.sleep(0.1)
    return time.monotonic()


def _listening(home: Path, process: subprocess.Popen[Any]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"peer exited early:\n{_log(home)[-3000:]}")
    try:
        return bool(json.loads((home / "peer.json").read_text()).get("pid") == process.pid)
    except (FileNotFoundError, ValueError):
        return False


def _peers(home: Path) -> set[str]:
    return set(_addresses(home))


def _addresses(home: Path) -> dict[str, str]:
    answer = trio.run(call, Home(home).control_socket, "peers", {})
    return {peer["node_id"]: peer["address"] for peer in answer["peers"]}


def _log(home: Path) -> str:
    try:
        return (home / "serve.log").read_text(errors="replace")
    except FileNotFoundError:
        return ""


def test_lan_peers_find_each_other_and_nobody_else(lan: LanBridge, tmp_path: Path) -> None:
    homes = [_home(tmp_path, i) for i in range(5)]
    ids = [_init(home) for home in homes]
    forged = os.urandom(20).hex()
    # Forged announcements first: by the time the finders browse, both are on the LAN.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    for index, node_id, tag in ((3, forged, "open"), (4, ids[4], "another-mesh")):
        argv = [sys.executable, "-c", _ANNOUNCE, node_id, lan.address(index), str(PORT), tag]
        lan.popen(index, argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes = {i: _serve(lan, homes[i], i, "--no-lan-discovery") for i in HIDDEN}
    processes |= {i: _serve(lan, homes[i], i) for i in FINDERS}
    listening = max(
        _wait(f"peer {i} listening", lambda i=i: _listening(homes[i], processes[i]))  # type: ignore[misc]
        for i in processes
    )

    def mesh_formed() -> bool:
        return all(_peers(homes[i]) >= {ids[j] for j in FINDERS if j != i} for i in FINDERS)

    formed = _wait("the LAN peers know each other", mesh_formed)
    assert formed - listening < 10.0, f"the LAN mesh took {formed - listening:.1f}s to form"

    # Each finder saw both forged announcements and turned them away.
    for i in FINDERS:
        _wait(
            f"peer {i} ignored the other mesh",
            lambda i=i: f"{ids[4]}._p2pbackup._tcp.local.' ignored: another mesh" in _log(homes[i]),  # type: ignore[misc]
        )
        _wait(
            f"peer {i} refused the forged id",
            lambda i=i: (
                f"LAN peer {forged[:12]} at {lan.address(3)}:{PORT} did not prove"  # type: ignore[misc]
                in _log(homes[i])
            ),
        )
    for i in FINDERS:
        listed = json.loads(
            subprocess.run(
                [*CLI, "--home", str(homes[i]), "peers", "--json"],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout
        )
        assert {p["node_id"] for p in listed["peers"]} == {ids[j] for j in FINDERS if j != i}
    assert _addresses(homes[0])[ids[WILDCARD]] == f"{lan.address(WILDCARD)}:{PORT}"
    for i in HIDDEN:
        assert _peers(homes[i]) == set()
    # The other mesh's announcer was never dialled: its peer heard from no finder at all.
    assert not any(lan.address(i) in _log(homes[4]) for i in FINDERS)

    # A stop unregisters from the LAN and closes zeroconf's thread: a clean exit.
    for i in FINDERS:
        processes[i].terminate()
    for i in FINDERS:
        assert processes[i].wait(30) == 0, _log(homes[i])[-3000:]
    print(f"LAN mesh of {len(FINDERS)} formed {formed - listening:.2f}s after all listened")
