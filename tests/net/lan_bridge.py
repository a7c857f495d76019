"""A small LAN inside network namespaces: one bridge, a few hosts, multicast between them.

`LanBridge(3)` makes a namespace holding a bridge and three host namespaces,
each with one veth on 10.77.0.0/24 (host i is 10.77.0.(10+i)) and its own
loopback. Names carry a prefix unique to this run, so parallel runs never
meet; traffic never leaves the namespaces. `close` (also on any failure while
building) stops what was started in them, by PID, and deletes them.

Where namespaces cannot be made (not root, no `ip`), or multicast does not
cross the bridge (when the test needs it), `LanBridge.open` skips the test
with that reason.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import pytest

from netbed import namespaces

SUBNET = "10.77.0"
PROBE_GROUP = "239.255.77.77"
PROBE_SECONDS = 10.0

_RECEIVE = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5399))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2])))
s.settimeout(float(sys.argv[3]))
print(s.recvfrom(64)[0].decode(), flush=True)
"""
_SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[2]))
for _ in range(int(float(sys.argv[3]) * 10)):
    s.sendto(b"lan-probe", (sys.argv[1], 5399))
    time.sleep(0.1)
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class LanBridge:
    def __init__(self, hosts: int) -> None:
        self.prefix = "l" + secrets.token_hex(3)
        self.bridge = f"{self.prefix}-br"
        self.hosts = [f"{self.prefix}-h{i}" for i in range(hosts)]
        self.processes: list[subprocess.Popen[Any]] = []
        self._made: list[str] = []

    @classmethod
    def open(cls, hosts: int, *, multicast: bool = True) -> LanBridge:
        """A built LAN, or the test skipped with the reason one cannot be built here;
        `multicast=False` for tests that need none (its probe takes seconds)."""
        if os.geteuid() != 0:
            pytest.skip("network namespaces need root")
        if shutil.which("ip") is None:
            pytest.skip("the `ip` tool (iproute2) is missing")
        lan = cls(hosts)
        try:
            lan._build()
            works = not multicast or lan._multicast_works()
        except (subprocess.CalledProcessError, OSError) as exc:
            lan.close()
            detail = getattr(exc, "stderr", b"") or b""
            pytest.skip(f"cannot make network namespaces: {exc} {detail.decode().strip()}")
        except BaseException:
            lan.close()
            raise
        if not works:
            lan.close()
            pytest.skip("multicast does not cross the namespace bridge")
        return lan

    def address(self, index: int) -> str:
        return f"{SUBNET}.{10 + index}"

    def _build(self) -> None:
        _ip("netns", "add", self.bridge)
        self._made.append(self.bridge)
        _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge, "link", "set", "br0", "up")
        for index, host in enumerate(self.hosts):
            _ip("netns", "add", host)
            self._made.append(host)
            outside = f"{self.prefix}v{index}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", host)
            _ip("link", "set", outside, "netns", self.bridge)
            _ip("-n", self.bridge, "link", "set", outside, "master", "br0", "up")
            _ip("-n", host, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
            _ip("-n", host, "link", "set", "eth0", "up")
            _ip("-n", host, "link", "set", "lo", "up")

    def _multicast_works(self) -> bool:
        args = (PROBE_GROUP,)
        receiver = self.popen(
            1,
            [sys.executable, "-c", _RECEIVE, *args, self.address(1), str(PROBE_SECONDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        sender = self.popen(
            0,
            [sys.executable, "-c", _SEND, *args, self.address(0), str(PROBE_SECONDS)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            out, _ = receiver.communicate(timeout=PROBE_SECONDS + 20)
        except subprocess.TimeoutExpired:
            out = b""
        finally:
            for process in (sender, receiver):
                _stop(process)
        return b"lan-probe" in (out or b"")

    def popen(self, index: int, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start `argv` inside host `index`'s namespace; stopped by `close` if still running."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.hosts[index], *argv], start_new_session=True, **kwargs
        )
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes:
            _stop(process, max(deadline - time.monotonic(), 0.1))
        for name in reversed(self._made):
            # Anything still inside (a child a process left) goes by PID, then the namespace.
            namespaces.remove(name)
        self._made.clear()

    def __enter__(self) -> LanBridge:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _stop(process: subprocess.Popen[Any], wait: float = 5.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
