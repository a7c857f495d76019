"""`serve` behind home A's router: a real miniupnpd maps, renews, forgets, refuses."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netbed import HOME_A, Testbed, UpnpDaemon
from tests.netbed.peers import ServePeer, dial, ping, unreachable, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LEASE = 4  # seconds: renewed every 2 s
PORT = 7400


@pytest.fixture(scope="module")
def daemon(bed: Testbed) -> UpnpDaemon:
    assert bed.upnp_daemon is not None
    return bed.upnp_daemon


@pytest.fixture(scope="module")
def mapped(bed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServePeer]:
    """A peer on a1 whose port the router has mapped."""
    home = tmp_path_factory.mktemp("homes") / "a1"
    peer = ServePeer(bed.hosts["a1"], home, PORT, "--port-mapping-lease", f"{LEASE}s")
    wait_for("a1's mapping", peer.mapping)
    yield peer
    peer.process.send_signal(signal.SIGTERM)


def test_a_public_host_reaches_the_peer_in_home_a_through_its_mapping(
    bed: Testbed, mapped: ServePeer, daemon: UpnpDaemon
) -> None:
    wan = bed.wan_address(HOME_A)
    assert mapped.mapping() == {
        "external": f"{wan}:{PORT}",
        "protocol": "upnp",
        "lease_expires_in": pytest.approx(LEASE, abs=LEASE),
    }
    assert PORT in daemon.mapped_ports()
    public = bed.hosts["pub1"]
    # Our handshake completes through the router and proves the peer's node id (the
    # mapped address is advertised once other peers confirmed it: tests/netbed/test_mesh.py).
    assert (dial(public, wan, PORT) or [""])[0] == mapped.node_id
    assert unreachable(public, mapped.host.address, PORT)  # only by the mapping
    assert "port mapping by upnp: 11.18.2.2:7400 -> 192.168.10.11:7400" in mapped.log_text()


def test_the_mapping_is_renewed_before_its_lease_runs_out(
    bed: Testbed, mapped: ServePeer, daemon: UpnpDaemon
) -> None:
    # miniupnpd drops a mapping when its lease ends: it must still be there after
    # two leases, and the peer still reachable through it.
    end = time.monotonic() + 2 * LEASE
    while time.monotonic() < end:
        assert PORT in daemon.mapped_ports()
        time.sleep(0.2)
    assert ping(bed.hosts["pub2"], bed.wan_address(HOME_A), PORT) == mapped.node_id


def test_a_router_that_forgot_the_mapping_gets_it_back(
    bed: Testbed, mapped: ServePeer, daemon: UpnpDaemon
) -> None:
    daemon.restart(forget=True)
    assert PORT not in daemon.mapped_ports()
    wait_for("the mapping again", lambda: PORT in daemon.mapped_ports())
    assert ping(bed.hosts["pub3"], bed.wan_address(HOME_A), PORT) == mapped.node_id
    assert "the router forgot the mapping of 11.18.2.2:7400; mapping again" in mapped.log_text()


def test_another_host_on_the_same_port_gets_another_external_port(
    bed: Testbed, mapped: ServePeer, tmp_path: Path
) -> None:
    a2 = bed.hosts["a2"]
    other = ServePeer(a2, tmp_path / "a2", PORT, "--port-mapping-lease", f"{LEASE}s")
    unmapped = ServePeer(a2, tmp_path / "a2-off", PORT + 2, "--no-port-mapping")
    got = wait_for("a2's mapping", other.mapping)
    host, port = got["external"].rsplit(":", 1)
    assert host == bed.wan_address(HOME_A) and int(port) != PORT
    assert ping(bed.hosts["pub1"], host, int(port)) == other.node_id
    # By now a peer that maps would have its mapping: the one told not to has none.
    assert wait_for("a2's second peer", unmapped.status)["port_mapping"] is None
    assert "port mapping" not in unmapped.log_text()
    assert unreachable(bed.hosts["pub1"], host, PORT + 2)
    assert other.stop() == 0 and unmapped.stop() == 0


def test_a_router_that_refuses_gets_one_line_and_the_peer_keeps_serving(
    bed: Testbed, mapped: ServePeer, daemon: UpnpDaemon, tmp_path: Path
) -> None:
    refused = PORT + 3
    daemon.restart(forget=False, rules=(f"deny {refused}-{refused} 0.0.0.0/0 0-65535",))
    try:
        peer = ServePeer(bed.hosts["a2"], tmp_path / "a2", refused)
        line = f"port mapping of 192.168.10.12:{refused} failed (upnp): Action not authorized"
        wait_for("the refusal in the log", lambda: line in peer.log_text())
        log = peer.log_text()
        assert log.count(line) == 1 and "Traceback" not in log
        status = peer.status()
        assert status is not None and status["port_mapping"] is None
        assert ping(bed.hosts["a1"], peer.host.address, refused) == peer.node_id
        assert peer.stop() == 0
    finally:
        daemon.restart(forget=False)
    # The other peer's mapping is back after the router's restart.
    wait_for("a1's mapping", lambda: PORT in daemon.mapped_ports())


def test_a_clean_stop_removes_the_mapping(mapped: ServePeer, daemon: UpnpDaemon) -> None:
    assert PORT in daemon.mapped_ports()
    assert mapped.stop() == 0
    assert PORT not in daemon.mapped_ports()
    assert "port mapping of 11.18.2.2:7400 removed" in mapped.log_text()


def test_a_router_with_nat_pmp_alone_maps_the_port_too(
    bed: Testbed, daemon: UpnpDaemon, tmp_path: Path
) -> None:
    port = PORT + 4
    daemon.restart(forget=False, upnp=False)
    try:
        peer = ServePeer(bed.hosts["a2"], tmp_path / "a2", port)
        got = wait_for("a NAT-PMP mapping", peer.mapping)
        assert got["external"] == f"{bed.wan_address(HOME_A)}:{port}"
        assert got["protocol"] == "natpmp"
        assert ping(bed.hosts["pub2"], bed.wan_address(HOME_A), port) == peer.node_id
        assert peer.stop() == 0
        assert port not in daemon.mapped_ports()
    finally:
        daemon.restart(forget=False)
