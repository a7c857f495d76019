"""Backups and restores over home links: real peers in network namespaces, the
owner on one LAN host and its nine holders on another, one direction of the link
between them shaped to 8 Mbit/s by the kernel (`tc tbf`).

Up: all forty shares of a backup's first packs used to go out at once and share
the link; each took longer than a put may stall, every put was given up, and a
6 MB file failed with "did not answer". The owner's send window (decision 0097)
lets out what the link carries.

Down: a restore's first fetches (the index and tree packs, shares of about 100
bytes) set the fetch pace to a second; each 2 MiB share after them then counted
as stalled and the fetch asked every holder, three times the bytes it needed.
The fetch window (decision 0098) lets a request stall only on its own time.

Down, after a recovery: the owner's new home has no catalog row for any pack, so
nothing said how long a share is and its fetches had no window at all.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.cli.localmesh import LocalMesh
from tests.net.lan_bridge import LanBridge

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PEERS = 10
OWNER = 0
HOLDERS_HOST = 1
LINK = "8mbit"
FILE_BYTES = 6 * 1024 * 1024
# 20 MiB of shares at 1 MB/s take 21 s: well within this, a failed run ends sooner.
COMMAND_SECONDS = 150


def _shaped_lan(host: int) -> Iterator[LanBridge]:
    """The LAN, with what LAN host `host` sends shaped to `LINK`."""
    if shutil.which("tc") is None:
        pytest.skip("the `tc` tool (iproute2) is missing: no link to shape")
    bridge = LanBridge.open(2, multicast=False)
    with bridge:
        inside = ["ip", "netns", "exec", bridge.hosts[host]]
        shape = ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", LINK]
        shaped = subprocess.run(
            [*inside, *shape, "burst", "64kb", "latency", "200ms"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if shaped.returncode != 0:
            pytest.skip(f"cannot shape a link here (tc tbf): {shaped.stderr.strip()}")
        yield bridge


@pytest.fixture
def slow_uplink() -> Iterator[LanBridge]:
    yield from _shaped_lan(OWNER)


@pytest.fixture
def slow_downlink() -> Iterator[LanBridge]:
    yield from _shaped_lan(HOLDERS_HOST)


class _AcrossTheLink(LocalMesh):
    """The owner on LAN host 0; every holder on host 1."""

    lan: LanBridge

    def _host(self, index: int) -> int:
        # A peer added later is the owner's new home, on the owner's machine.
        return OWNER if index in (OWNER, PEERS) else HOLDERS_HOST

    def command_prefix(self, index: int) -> list[str]:
        return ["ip", "netns", "exec", self.lan.hosts[self._host(index)]]

    def listen_address(self, index: int, port: int) -> str:
        return f"{self.lan.address(self._host(index))}:{port}"


def _mesh(lan: LanBridge, root: Path) -> _AcrossTheLink:
    mesh = _AcrossTheLink(root / "mesh", PEERS, serve_args=("--exempt-blocks", "lan"))
    mesh.lan = lan
    return mesh


def _backed_up(mesh: LocalMesh, root: Path) -> Path:
    mesh.start()
    mesh.wait_for_tables()
    data = root / "data"
    data.mkdir()
    (data / "video.bin").write_bytes(os.urandom(FILE_BYTES))
    done = mesh.cli(OWNER, "backup", str(data), "--json", timeout=COMMAND_SECONDS)
    assert done.returncode == 0, f"{done.stdout[-600:]}\n{done.stderr[-600:]}"
    return data / "video.bin"


def _restored(mesh: LocalMesh, root: Path, owner: int = OWNER) -> Path:
    target = root / "restored"
    done = mesh.cli(
        owner, "restore", "latest", "--target", str(target), "--json", timeout=COMMAND_SECONDS
    )
    assert done.returncode == 0, f"{done.stdout[-600:]}\n{done.stderr[-600:]}"
    return next(target.rglob("video.bin"))


def _received_bytes(lan: LanBridge, host: int) -> int:
    """What LAN host `host`'s link has brought in so far."""
    path = "/sys/class/net/eth0/statistics/rx_bytes"
    shown = subprocess.run(
        ["ip", "netns", "exec", lan.hosts[host], "cat", path],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(shown.stdout)


def test_a_backup_over_a_slow_uplink_is_placed_and_restores(
    slow_uplink: LanBridge, tmp_path: Path
) -> None:
    with _mesh(slow_uplink, tmp_path) as mesh:
        original = _backed_up(mesh, tmp_path)
        assert filecmp.cmp(original, _restored(mesh, tmp_path), shallow=False)


def test_a_restore_over_a_slow_downlink_fetches_about_what_it_needs(
    slow_downlink: LanBridge, tmp_path: Path
) -> None:
    with _mesh(slow_downlink, tmp_path) as mesh:
        original = _backed_up(mesh, tmp_path)
        before = _received_bytes(slow_downlink, OWNER)
        restored = _restored(mesh, tmp_path)
        received = _received_bytes(slow_downlink, OWNER) - before
        assert filecmp.cmp(original, restored, shallow=False)
        # k shares of each pack, a spare while the pace is unknown, and the protocol:
        # asking every holder brought three times the file.
        assert received < 1.5 * FILE_BYTES, f"{received} bytes came in for {FILE_BYTES}"


def test_a_recovering_owner_restores_over_a_slow_downlink_fetching_about_what_it_needs(
    slow_downlink: LanBridge, tmp_path: Path
) -> None:
    with _mesh(slow_downlink, tmp_path) as mesh:
        original = _backed_up(mesh, tmp_path)
        phrase = mesh.peers[OWNER].recovery_phrase
        assert phrase is not None
        mesh.stop_peer(OWNER)
        home = mesh.add_peer()
        recovered = mesh.cli(home.index, "init", "--recover", "--json", stdin=phrase)
        assert recovered.returncode == 0, recovered.stderr[-600:]
        mesh.start_peer(home.index, bootstrap=mesh.peers[1].listen)
        mesh.wait_for_tables(at_least=PEERS - 1, indices=[home.index])
        before = _received_bytes(slow_downlink, OWNER)
        restored = _restored(mesh, tmp_path, owner=home.index)
        received = _received_bytes(slow_downlink, OWNER) - before
        assert filecmp.cmp(original, restored, shallow=False)
        assert received < 1.5 * FILE_BYTES, f"{received} bytes came in for {FILE_BYTES}"
