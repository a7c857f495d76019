"""A backup through a relay against a direct one, on the NAT testbed.

The same owner on the public segment backs up the same amount of fresh random
data (nothing to deduplicate) to five holders, k = 3 of n = 5: once to two
public hosts and three LAN hosts (every share direct), once to two public
hosts, home A's mapped host and the two hosts of home B, behind a NAT with no
UPnP and no hole punching, so two shares of five go through a relay. The relay's own rate limits are
lifted: what is measured is the extra hop, not a limit. A first, unmeasured
backup opens the connections; then rounds alternate between the two meshes;
medians with their spread. Needs the testbed (root,
`ip`, `nft`, miniupnpd); otherwise the rows say why they were skipped.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from netbed import Testbed, skip_reason
from netbed.mesh import NetMesh
from netbed.scenario import wait_reachability

MB = 1_000_000
WARM_UP_SECONDS = 60.0
OWNER = 1
DIRECT = ("pub1", "pub2", "pub3", "lan1", "lan2", "lan3")
RELAYED = ("pub1", "pub2", "pub3", "b1", "b2", "a1")
SERVE_ARGS = (
    "--rpc-timeout",
    "5s",
    "--relay-rate",
    "1GiB/s",
    "--relay-total-rate",
    "1GiB/s",
    "--no-hole-punch",
)


@dataclass
class RelayBackups:
    size_bytes: int = 0
    direct_seconds: list[float] = field(default_factory=list)
    relayed_seconds: list[float] = field(default_factory=list)
    # Shares the two relayed holders took, as they report: proof the relay carried some.
    relayed_shares: int = 0
    skipped: str | None = None

    def rate(self, seconds: list[float]) -> float:
        return self.size_bytes / MB / statistics.median(seconds)


def _mesh(bed: Testbed, root: Path, names: tuple[str, ...], port: int) -> NetMesh:
    mesh = NetMesh.on(root, [bed.hosts[name] for name in names], *SERVE_ARGS, first_port=port)
    mesh.start()
    wait_reachability(mesh, lambda text: None)
    # Two peers of one /24 per bucket (decision 0023): the public segment's and the
    # LAN's three need not all be in the owner's table; its lookups find the rest.
    mesh.wait_for_tables(at_least=len(names) - 2, indices=[OWNER])
    mesh.cli_json(OWNER, "config", "set", "redundancy", "3-of-5")
    # Not measured: the first backup opens the connections (and relayed sessions) that
    # later ones reuse, as a running peer has them open.
    warm = root / "warm-up.bin"
    warm.write_bytes(random.Random(0).randbytes(MB))
    _warm_up(mesh, warm)
    return mesh


def _warm_up(mesh: NetMesh, data: Path, deadline: float = WARM_UP_SECONDS) -> None:
    """The first backup, tried again until the owner reaches enough holders: a table
    that knows the relayed peers does not yet mean their relayed sessions are open,
    and a backup that finds too few holders fails rather than wait for them."""
    give_up = time.monotonic() + deadline
    while True:
        try:
            mesh.cli_json(OWNER, "backup", str(data))
            return
        except RuntimeError as exc:
            if "peers can hold shares" not in str(exc) or time.monotonic() > give_up:
                raise
        time.sleep(1.0)


def run_relay_backups(
    workdir: Path, log: Callable[[str], None], rounds: int = 5, size: int = 24 * MB
) -> RelayBackups:
    reason = skip_reason()
    if reason is not None:
        log(f"relay rows skipped: {reason}")
        return RelayBackups(skipped=reason)
    try:
        return _measure(workdir, log, rounds, size)
    except (OSError, RuntimeError, TimeoutError) as exc:  # the other rows still stand
        log(f"relay rows failed: {exc}")
        return RelayBackups(skipped=f"failed: {str(exc).splitlines()[0]}")


def _measure(workdir: Path, log: Callable[[str], None], rounds: int, size: int) -> RelayBackups:
    result = RelayBackups(size_bytes=size)
    rng = random.Random(18)
    with Testbed.build() as bed:
        direct = _mesh(bed, workdir / "relay-direct", DIRECT, 7000)
        try:
            relayed = _mesh(bed, workdir / "relay-relayed", RELAYED, 7100)
            try:
                for turn in range(rounds):
                    for mesh, times in (
                        (direct, result.direct_seconds),
                        (relayed, result.relayed_seconds),
                    ):
                        data = workdir / f"relay-data-{turn}-{len(times)}.bin"
                        data.write_bytes(rng.randbytes(size))
                        done = mesh.cli_json(OWNER, "backup", str(data))
                        times.append(float(done["seconds"]))
                        data.unlink()
                    log(
                        f"relay round {turn + 1}: direct {result.direct_seconds[-1]:.2f}s, "
                        f"relayed {result.relayed_seconds[-1]:.2f}s"
                    )
                result.relayed_shares = sum(relayed.status(i)["shares_held"] for i in (3, 4))
            finally:
                relayed.close()
        finally:
            direct.close()
    return result


def rows(result: RelayBackups) -> list[tuple[str, str]]:
    """(measure, detail) rows for the table."""
    if result.skipped is not None:
        return [("backup through a relay (NAT testbed)", f"skipped: {result.skipped}")]
    direct, relayed = result.rate(result.direct_seconds), result.rate(result.relayed_seconds)

    def spread(seconds: list[float]) -> str:
        return ", ".join(f"{s:.2f}" for s in seconds)

    size = result.size_bytes / MB
    return [
        (
            "backup, all shares direct (NAT testbed)",
            f"{direct:.1f} MB/s median; {size:.0f} MB each, runs {spread(result.direct_seconds)} s",
        ),
        (
            "backup, 2 of 5 shares through a relay (NAT testbed)",
            f"{relayed:.1f} MB/s median, {relayed / direct:.2f}x direct; "
            f"runs {spread(result.relayed_seconds)} s; the relayed holders took "
            f"{result.relayed_shares} shares",
        ),
    ]
