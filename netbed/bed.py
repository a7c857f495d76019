"""The testbed: namespaces wired into a small internet, and the processes run in them.

`Testbed.build(prefix)` wires it all and returns the bed; used as a context
manager, its exit (even after a failure) kills every process it spawned, by
PID, and deletes every namespace it made.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from netbed import namespaces
from netbed.namespaces import TestbedError, ip
from netbed.plan import (
    HOME_A,
    SitePlan,
    gateway,
    host_address,
    router_wan,
    site_plans,
)
from netbed.router import LAN_IF, WAN_IF, UpnpDaemon, start_nat

CORE = "core"
_builds = itertools.count()
Output = int | IO[Any] | None


def unique_prefix() -> str:
    """A namespace prefix no other live process uses: `nb<pid>-<n>-`."""
    return f"{namespaces.PREFIX_STEM}{os.getpid()}-{next(_builds)}-"


@dataclass(frozen=True)
class Host:
    """One machine of the testbed: a namespace with one interface, `eth0`."""

    name: str
    ns: str
    address: str
    site: str
    bed: Testbed = field(repr=False, compare=False)

    def command(self, args: Sequence[str]) -> list[str]:
        """`args` as a command line that runs on this host."""
        return namespaces.in_ns(self.ns, args)

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `args` on this host to the end; its output as text."""
        return subprocess.run(
            self.command(args),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            env=None if env is None else dict(env),
            input=input,
        )

    def spawn(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: Output = subprocess.DEVNULL,
        stderr: Output = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start `args` on this host; the bed kills it at teardown if it still runs."""
        process = subprocess.Popen(
            self.command(args),
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
        self.bed.processes.append(process)
        return process


@dataclass(frozen=True)
class Router:
    """A home router: NAT between its private LAN and its WAN link to the core."""

    name: str
    ns: str
    site: str
    wan_address: str
    lan_address: str


class Testbed:
    """The namespaces of one build and what runs in them."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, prefix: str, workdir: Path) -> None:
        self.prefix = prefix
        self.workdir = workdir
        self.namespaces: list[str] = []
        self.hosts: dict[str, Host] = {}
        self.routers: dict[str, Router] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.upnp_daemon: UpnpDaemon | None = None

    @classmethod
    def build(
        cls, prefix: str | None = None, *, public_hosts: int = 3, lan_hosts: int = 3
    ) -> Testbed:
        """Wire the whole testbed and start home A's miniupnpd; torn down if that fails."""
        namespaces.remove_leftovers()
        prefix = prefix or unique_prefix()
        bed = cls(prefix, Path(tempfile.mkdtemp(prefix=f"{prefix}bed-")))
        try:
            bed._wire(site_plans(public_hosts, lan_hosts))
        except BaseException:
            bed.close()
            raise
        return bed

    def __enter__(self) -> Testbed:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ---- questions ------------------------------------------------------

    def site_hosts(self, site: str) -> list[Host]:
        return [h for h in self.hosts.values() if h.site == site]

    def wan_address(self, site: str) -> str:
        """The address the internet sees a site's hosts at: its router's, or their own."""
        for router in self.routers.values():
            if router.site == site:
                return router.wan_address
        raise KeyError(f"{site} has no router: its hosts are on the internet")

    def router_of(self, site: str) -> Router:
        return next(r for r in self.routers.values() if r.site == site)

    # ---- building -------------------------------------------------------

    def _ns(self, role: str) -> str:
        name = f"{self.prefix}{role}"
        namespaces.run([namespaces.IP, "netns", "add", name])
        self.namespaces.append(name)
        ip(name, "link", "set", "lo", "up")
        return name

    def _wire(self, plans: Sequence[SitePlan]) -> None:
        core = self._ns(CORE)
        namespaces.run(namespaces.in_ns(core, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
        for index, plan in enumerate(plans):
            if plan.router is None:
                self._segment(core, f"s{index}", plan)
            else:
                self._home(core, f"w{index}", plan)

    def _segment(self, gateway_ns: str, bridge: str, plan: SitePlan) -> None:
        """A bridge in `gateway_ns` holding the segment's gateway, one veth per host."""
        ip(gateway_ns, "link", "add", bridge, "type", "bridge", "mcast_snooping", "0")
        ip(gateway_ns, "addr", "add", f"{gateway(plan.net)}/24", "dev", bridge)
        ip(gateway_ns, "link", "set", bridge, "up")
        for index, name in enumerate(plan.host_names):
            ns = self._ns(name)
            port = f"{bridge}p{index}"
            namespaces.run(
                [namespaces.IP, "link", "add", "eth0", "netns", ns, "type", "veth",
                 "peer", "name", port, "netns", gateway_ns]
            )  # fmt: skip
            ip(gateway_ns, "link", "set", port, "master", bridge, "up")
            address = host_address(plan.net, index)
            ip(ns, "addr", "add", f"{address}/24", "dev", "eth0")
            ip(ns, "link", "set", "eth0", "up")
            ip(ns, "route", "add", "default", "via", gateway(plan.net))
            # Multicast (mDNS) leaves by the one interface, whatever the routes say.
            ip(ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
            self.hosts[name] = Host(name, ns, address, plan.site, self)

    def _home(self, core: str, link: str, plan: SitePlan) -> None:
        """A NAT router on its own link to the core, with the site's LAN behind it."""
        assert plan.router is not None and plan.wan_net is not None
        ns = self._ns(plan.router)
        namespaces.run(
            [namespaces.IP, "link", "add", WAN_IF, "netns", ns, "type", "veth",
             "peer", "name", link, "netns", core]
        )  # fmt: skip
        ip(core, "addr", "add", f"{gateway(plan.wan_net)}/24", "dev", link)
        ip(core, "link", "set", link, "up")
        wan = router_wan(plan.wan_net)
        ip(ns, "addr", "add", f"{wan}/24", "dev", WAN_IF)
        ip(ns, "link", "set", WAN_IF, "up")
        ip(ns, "route", "add", "default", "via", gateway(plan.wan_net))
        start_nat(ns)
        self._segment(ns, LAN_IF, plan)
        router = Router(plan.router, ns, plan.site, wan, gateway(plan.net))
        self.routers[plan.router] = router
        if plan.upnp:
            workdir = self.workdir / plan.router
            workdir.mkdir()
            self.upnp_daemon = UpnpDaemon(ns, wan, plan.net, workdir)
            self.upnp_daemon.start()

    # ---- teardown -------------------------------------------------------

    def close(self) -> None:
        """Kill every process started here (by PID) and delete every namespace."""
        errors: list[Exception] = []
        if self.upnp_daemon is not None:
            self.upnp_daemon.stop()
        for process in self.processes:
            _stop(process)
        self.processes.clear()
        for ns in reversed(self.namespaces):
            try:
                namespaces.remove(ns)
            except TestbedError as exc:
                errors.append(exc)
        self.namespaces.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise TestbedError("; ".join(str(e) for e in errors))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def home_a_daemon(bed: Testbed) -> UpnpDaemon:
    """Home A's miniupnpd (the testbed always runs one)."""
    if bed.upnp_daemon is None:
        raise TestbedError(f"{HOME_A} has no UPnP daemon")
    return bed.upnp_daemon
