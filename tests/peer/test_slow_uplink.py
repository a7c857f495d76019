"""A backup from behind a home uplink: real peers in network namespaces, the owner's
outgoing link shaped to 8 Mbit/s by the kernel (`tc tbf`), its nine holders on
the far side of a bridge.

All forty shares of a backup's first packs used to go out at once and share the
link: each took longer than a put may stall, every put was given up, and a 6 MB
file failed with "did not answer". The owner's send window (decision 0097) lets
out what the link carries, and the backup restores byte for byte.
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
UPLINK = "8mbit"
FILE_BYTES = 6 * 1024 * 1024
# 20 MiB of shares at 1 MB/s take 21 s: well within this, a failed run ends sooner.
BACKUP_SECONDS = 150


@pytest.fixture
def lan() -> Iterator[LanBridge]:
    if shutil.which("tc") is None:
        pytest.skip("the `tc` tool (iproute2) is missing: no link to shape")
    bridge = LanBridge.open(2, multicast=False)
    with bridge:
        inside = ["ip", "netns", "exec", bridge.hosts[OWNER]]
        shape = ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", UPLINK]
        shaped = subprocess.run(
            [*inside, *shape, "burst", "64kb", "latency", "200ms"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if shaped.returncode != 0:
            pytest.skip(f"cannot shape a link here (tc tbf): {shaped.stderr.strip()}")
        yield bridge


class _BehindUplink(LocalMesh):
    """The owner on LAN host 0, behind the shaped link; every holder on host 1."""

    lan: LanBridge

    def _host(self, index: int) -> int:
        return 0 if index == OWNER else 1

    def command_prefix(self, index: int) -> list[str]:
        return ["ip", "netns", "exec", self.lan.hosts[self._host(index)]]

    def listen_address(self, index: int, port: int) -> str:
        return f"{self.lan.address(self._host(index))}:{port}"


def test_a_backup_over_a_slow_uplink_is_placed_and_restores(lan: LanBridge, tmp_path: Path) -> None:
    mesh = _BehindUplink(tmp_path / "mesh", PEERS, serve_args=("--exempt-blocks", "lan"))
    mesh.lan = lan
    with mesh:
        mesh.start()
        mesh.wait_for_tables()
        data = tmp_path / "data"
        data.mkdir()
        (data / "video.bin").write_bytes(os.urandom(FILE_BYTES))
        done = mesh.cli(OWNER, "backup", str(data), "--json", timeout=BACKUP_SECONDS)
        assert done.returncode == 0, f"{done.stdout[-600:]}\n{done.stderr[-600:]}"
        target = tmp_path / "restored"
        mesh.cli_json(OWNER, "restore", "latest", "--target", str(target))
        restored = next(target.rglob("video.bin"))
        assert filecmp.cmp(data / "video.bin", restored, shallow=False)
