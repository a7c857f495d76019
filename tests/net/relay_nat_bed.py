"""Two homes behind NAT routers without UPnP and a relay on the "internet" between,
built from network namespaces for the relay tests, and removed again whatever happens.

    home A host 192.168.1.2 -- router A (WAN 10.77.0.2) --+
                                                           +-- bridge, relay 10.77.0.1
    home B host 192.168.2.2 -- router B (WAN 10.77.0.3) --+

The routers masquerade and drop what comes unsolicited from the WAN, as home
routers do. Namespaces are named `rl<pid>-<n>-<role>` so parallel workers
never clash; everything runs inside them and their addresses exist nowhere else.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from netbed import namespaces

RELAY = "10.77.0.1"
ROOT = Path(__file__).resolve().parents[2]
_COUNT = itertools.count()

ROUTER_RULES = """
table inet nat_{side} {{
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        oifname "wan" masquerade
    }}
    chain input {{
        type filter hook input priority 0; policy accept;
        iifname "wan" ct state established,related accept
        iifname "wan" drop
    }}
    chain forward {{
        type filter hook forward priority 0; policy accept;
        ct state established,related accept
        iifname "wan" drop
    }}
}}
"""


def missing() -> str | None:
    """Why the bed cannot be built here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = f"rl{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def _run(*args: str, stdin: str | None = None) -> None:
    subprocess.run(list(args), input=stdin, text=True, capture_output=True, check=True, timeout=10)


@dataclass
class Bed:
    prefix: str
    names: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def add(self, role: str) -> str:
        name = self.ns(role)
        _run("ip", "netns", "add", name)
        self.names.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def build(self) -> None:
        inet = self.add("inet")
        _run("ip", "-n", inet, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", inet, "addr", "add", f"{RELAY}/24", "dev", "br0")
        _run("ip", "-n", inet, "link", "set", "br0", "up")
        for side, number in (("a", 1), ("b", 2)):
            router, host = self.add(f"r{side}"), self.add(f"h{side}")
            _run("ip", "link", "add", "wan", "netns", router, "type", "veth", "peer", "name",
                 f"w{side}", "netns", inet)  # fmt: skip
            _run("ip", "-n", inet, "link", "set", f"w{side}", "master", "br0", "up")
            _run("ip", "-n", router, "addr", "add", f"10.77.0.{number + 1}/24", "dev", "wan")
            _run("ip", "link", "add", "lan", "netns", router, "type", "veth", "peer", "name",
                 "eth0", "netns", host)  # fmt: skip
            _run("ip", "-n", router, "addr", "add", f"192.168.{number}.1/24", "dev", "lan")
            _run("ip", "-n", host, "addr", "add", f"192.168.{number}.2/24", "dev", "eth0")
            for ns, dev in ((router, "wan"), (router, "lan"), (host, "eth0")):
                _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", host, "route", "add", "default", "via", f"192.168.{number}.1")
            _run("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            _run(
                "ip",
                "netns",
                "exec",
                router,
                "nft",
                "-f",
                "-",
                stdin=ROUTER_RULES.format(side=side),
            )

    def start(self, role: str, *args: str) -> subprocess.Popen[str]:
        """A peer of `relay_nat_peer` in namespace `role`; killed at teardown."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "tests.net.relay_nat_peer", *args]
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(role), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.processes.append(process)
        return process

    def teardown(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for name in reversed(self.names):
            namespaces.remove(name)


def remove_leftovers() -> None:
    """Delete the namespaces of earlier runs whose process is gone (killed mid-test)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.match(r"^rl(\d+)-", name)
        if match is None or namespaces.alive(int(match.group(1))):
            continue
        Bed(name, [name]).teardown()


@contextlib.contextmanager
def nat_bed() -> Iterator[Bed]:
    remove_leftovers()
    bed = Bed(f"rl{os.getpid()}-{next(_COUNT)}")
    try:
        bed.build()
        yield bed
    finally:
        bed.teardown()


def read_until(process: subprocess.Popen[str], word: str) -> str:
    """The value of the next `word value` line the process prints."""
    assert process.stdout is not None
    while line := process.stdout.readline():
        key, _, value = line.strip().partition(" ")
        if key == word:
            return value
    raise AssertionError(f"the peer ended before it said {word}")
