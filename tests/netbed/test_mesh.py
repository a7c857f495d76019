"""Acceptance on the NAT testbed: an owner behind a closed NAT backs up to peers in
every kind of place, and a new machine elsewhere restores from the phrase alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from netbed import HOME_A, HOME_B, LAN, PUBLIC, Testbed
from netbed.scenario import back_up_and_recover

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_an_owner_behind_a_closed_nat_backs_up_and_a_new_machine_restores(
    bed: Testbed, tmp_path: Path
) -> None:
    said: list[str] = []
    outcome = back_up_and_recover(bed, tmp_path, said.append)
    assert outcome.reachability["a1"] == "mapped" and outcome.reachability["a2"] == "mapped"
    assert outcome.reachability["b1"] == "relayed" and outcome.reachability["b2"] == "relayed"
    assert outcome.reachability["pub1"] == "public" and outcome.reachability["lan1"] == "public"
    for site in (HOME_A, HOME_B, LAN, PUBLIC):
        assert outcome.holders_by_site.get(site, 0) >= 1, (site, outcome.holders_by_site, said)
    assert outcome.restored["files_failed"] == 0
    assert outcome.problems == []
    assert outcome.restored["files_restored"] == outcome.files == 60
