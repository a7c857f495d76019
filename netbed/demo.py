"""`make demo-nat`: the mesh where its users are, on a small internet built in
network namespaces on this machine (needs root, `ip`, `nft` and miniupnpd).

An owner in home B, behind a NAT with no UPnP, backs up a folder to peers in
home A (a NAT whose port mapping the peers use), home B, a LAN and the public
segment; then its machine is destroyed and a new machine in home A restores
the folder from the recovery phrase and one member's address.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from netbed import Testbed, skip_reason
from netbed.scenario import back_up_and_recover


def main() -> int:
    reason = skip_reason()
    if reason is not None:
        print(f"cannot build the testbed here: {reason}", file=sys.stderr)
        return 1
    began = time.monotonic()

    def say(text: str) -> None:
        print(f"{time.monotonic() - began:6.1f}s  {text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="p2pbackup-demo-nat-") as work:
        say("building the testbed: public segment, home A (UPnP), home B (no UPnP), a LAN")
        with Testbed.build() as bed:
            outcome = back_up_and_recover(bed, Path(work), say)
    sites = ", ".join(f"{site} {count}" for site, count in sorted(outcome.holders_by_site.items()))
    ok = not outcome.problems and outcome.restored.get("files_failed") == 0
    say(f"holders by site: {sites}")
    say("the restore is byte-identical" if ok else f"differences: {outcome.problems[:5]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
