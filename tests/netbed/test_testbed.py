"""The NAT testbed itself: NAT, no way into home B, UPnP into home A, a routed LAN."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from netbed import HOME_A, HOME_B, PUBLIC, Host, Testbed, namespaces
from tests.netbed.conftest import code_env, probe_server, reach, skip_without_testbed

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_home_a_reaches_the_internet_from_its_wan_address(bed: Testbed) -> None:
    public = bed.hosts["pub1"]
    probe_server(public, 9000)
    for name in ("a1", "a2"):
        assert reach(bed.hosts[name], public.address, 9000) == bed.wan_address(HOME_A)
    assert reach(bed.hosts["b1"], public.address, 9000) == bed.wan_address(HOME_B)
    assert bed.wan_address(HOME_A) != bed.wan_address(HOME_B)


def test_the_internet_cannot_reach_into_home_b(bed: Testbed) -> None:
    inside = bed.hosts["b1"]
    probe_server(inside, 9001)
    assert reach(bed.hosts["b2"], inside.address, 9001) == bed.hosts["b2"].address
    public = bed.hosts["pub2"]
    assert reach(public, inside.address, 9001) is None
    for port in (9001, 5000, 7400):
        assert reach(public, bed.wan_address(HOME_B), port) is None
    # And its router offers no UPnP to ask for a way in; home A's does.
    assert _igd_count(inside) == 0
    assert _igd_count(bed.hosts["a1"]) == 1


def test_a_upnp_mapping_in_home_a_lets_the_internet_in(bed: Testbed) -> None:
    inside, public = bed.hosts["a2"], bed.hosts["pub3"]
    probe_server(inside, 9002)
    wan = bed.wan_address(HOME_A)
    assert reach(public, wan, 9002) is None
    inside.run(["upnpc", "-e", "netbed", "-a", inside.address, "9002", "9002", "TCP"])
    assert 9002 in bed.upnp_daemon.mapped_ports()  # type: ignore[union-attr]
    assert reach(public, wan, 9002) == public.address
    assert reach(public, inside.address, 9002) is None  # still only by the mapping


def test_lan_hosts_reach_each_other_and_the_internet_directly(bed: Testbed) -> None:
    lan1, lan2, public = bed.hosts["lan1"], bed.hosts["lan2"], bed.hosts["pub1"]
    probe_server(lan1, 9003)
    assert reach(lan2, lan1.address, 9003) == lan2.address
    assert reach(public, lan1.address, 9003) == public.address
    probe_server(public, 9004)
    assert reach(lan1, public.address, 9004) == lan1.address
    assert {h.site for h in bed.site_hosts(PUBLIC)} == {PUBLIC}


def test_lan_hosts_share_multicast(bed: Testbed) -> None:
    listener = bed.hosts["lan3"].spawn(
        [sys.executable, "-m", "netbed.probe", "mcast-listen"],
        env=code_env(),
        stdout=subprocess.PIPE,
    )
    assert listener.stdout is not None
    assert listener.stdout.readline() == b"ready\n"
    bed.hosts["lan1"].run([sys.executable, "-m", "netbed.probe", "mcast-send"], env=code_env())
    assert listener.stdout.readline().decode().strip() == bed.hosts["lan1"].address


def test_teardown_leaves_no_namespace_and_no_process() -> None:
    skip_without_testbed()
    # A leftover of a builder that no longer runs goes at the next build.
    dead = _dead_pid()
    leftover = f"{namespaces.PREFIX_STEM}{dead}-0-core"
    namespaces.run(["ip", "netns", "add", leftover])
    folder = Path(tempfile.mkdtemp(prefix=f"{namespaces.PREFIX_STEM}{dead}-0-bed-"))
    with Testbed.build() as bed:
        assert leftover not in namespaces.listed()
        assert not folder.exists()
        process = probe_server(bed.hosts["b2"], 9005)
        made = list(bed.namespaces)
        assert len(made) == 13
        daemon = bed.upnp_daemon.process  # type: ignore[union-attr]
        assert daemon is not None and daemon.poll() is None
        workdir = bed.workdir
    assert not workdir.exists()
    assert process.poll() is not None and daemon.poll() is not None
    assert not set(made) & set(namespaces.listed())


def test_a_failed_build_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_without_testbed()
    ours = f"{namespaces.PREFIX_STEM}{os.getpid()}-"
    before = {ns for ns in namespaces.listed() if ns.startswith(ours)}

    def refuse(self: object, rules: tuple[str, ...] = ()) -> None:
        raise namespaces.TestbedError("miniupnpd would not start")

    monkeypatch.setattr("netbed.router.UpnpDaemon.start", refuse)
    with pytest.raises(namespaces.TestbedError, match="would not start"):
        Testbed.build()
    assert {ns for ns in namespaces.listed() if ns.startswith(ours)} == before


def _igd_count(host: Host) -> int:
    """How many UPnP devices answer `host`'s discovery."""
    ask = (
        "import miniupnpc\nu = miniupnpc.UPnP()\nu.discoverdelay = 500\n"
        "try:\n    print(u.discover())\nexcept Exception:\n    print(0)\n"
    )  # miniupnpc raises when no device answers
    return int(host.run([sys.executable, "-c", ask]).stdout)


def _dead_pid() -> int:
    """The PID of a process that has ended (and was reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
