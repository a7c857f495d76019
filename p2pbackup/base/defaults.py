"""Defaults a new mesh gets, named once so the CLI, the peer and the simulator agree."""

from __future__ import annotations

SHARES_NEEDED = 3  # k: any 3 shares rebuild a pack
SHARES_TOTAL = 10  # n: shares made of each pack
HAPPY = 7  # fewest distinct peers a backup accepts a pack on
LEASE_SECONDS = 90 * 86_400  # how long holders keep an owner's shares unrenewed
RENEW_INTERVAL = 7 * 86_400.0  # how often an owner renews its leases
