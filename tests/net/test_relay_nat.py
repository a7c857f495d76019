"""Behind real NAT routers (network namespaces, nftables masquerade, no UPnP): two homes
reach each other through a relay on the internet side, and by a hole punch."""

from __future__ import annotations

import pytest

from tests.net.relay_nat_bed import RELAY, missing, nat_bed, read_until

WHY_NOT = missing()
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""),
]


def _reach(punch: bool) -> tuple[str, int]:
    """Home A's peer reaches home B's; its result and the bytes the relay carried."""
    with nat_bed() as bed:
        relay = bed.start("inet", "relay", f"{RELAY}:7000")
        read_until(relay, "READY")
        flag = "1" if punch else "0"
        hidden = bed.start("hb", "peer", "192.168.2.2", f"{RELAY}:7000", flag)
        hidden_id, route = read_until(hidden, "ID"), read_until(hidden, "ROUTE")
        assert route.endswith(f"@{RELAY}:7000")
        dialler = bed.start("ha", "peer", "192.168.1.2", f"{RELAY}:7000", flag, hidden_id, route)
        result = read_until(dialler, "RESULT")
        relay.terminate()
        return result, int(read_until(relay, "CARRIED"))


def test_two_homes_without_upnp_reach_each_other_through_the_relay() -> None:
    result, carried = _reach(punch=False)
    assert result == "ok=True punched=0"
    assert carried > 2**20  # the share went through the relay


def test_a_hole_punch_between_two_homes_leaves_the_relay_out() -> None:
    result, carried = _reach(punch=True)
    assert result == "ok=True punched=1"
    assert carried == 0
