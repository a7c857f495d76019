"""Scenario `lookups`: do iterative lookups find the true closest peers?

N peers join one after another through a single bootstrap peer, the mesh
settles, then L lookups for random keys start from random peers, in batches
half a simulated minute apart. Each result is compared with the ground truth
(the k live peers closest to the key); hops and latency are kept per batch.

The batches measure the mesh the joins built: 1,000 lookups end within an
hour, before the peers' first hourly refresh. Ten minutes apart they spanned
8.3 simulated hours, and at 10,000 peers the upkeep in between (refresh
walks, probes, dial-backs) cost more than the joins and the lookups together
while telling nothing about lookups in a mesh where no peer leaves; the
storage scenarios are where upkeep meets churn (decision 0055).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pbackup.simulations.mesh import MeshParams, SimMesh, SimPeer
from p2pbackup.simulations.stats import median, percentile
from p2pbackup.simulations.world import Progress

SUMMARY = "do iterative lookups find the true k closest peers, and in how many hops?"
SETTLE_SECONDS = 60.0
BATCH = 20
BATCH_EVERY = 30.0


@dataclass(frozen=True)
class LookupsParams(MeshParams):
    peers: int = 1000
    lookups: int = 200
    join_concurrency: int = 25


Job = tuple[SimPeer, bytes]  # a lookup: where it starts, the key it looks for


@dataclass
class Tally:
    """What the lookups found so far, and the per-batch series the report plots."""

    found_closest: int = 0
    found_all: int = 0
    hops: list[int] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)
    series: dict[str, list[Any]] = field(
        default_factory=lambda: {"hours": [], "lookup_hops": [], "lookup_latency_ms": []}
    )


async def _lookup(
    mesh: SimMesh, job: Job, tally: Tally, hops: list[int], latency: list[float]
) -> None:
    """One lookup, checked against the ground truth: the k live peers closest to the key."""
    source, target = job
    k = mesh.dht.k
    began = trio.current_time()
    outcome = await source.peer.dht.lookup(target)
    latency.append(trio.current_time() - began)
    truth = [n for n in mesh.true_closest(target, k + 1) if n != source.node_id][:k]
    got = {c.node_id for c in outcome.contacts}
    tally.found_closest += truth[0] in got
    tally.found_all += set(truth) <= got
    hops.append(outcome.stats.hops)
    tally.messages.append(outcome.stats.queries)


async def _batches(mesh: SimMesh, jobs: list[Job]) -> Tally:
    """The lookups in batches of BATCH at once, one batch every BATCH_EVERY seconds."""
    tally = Tally()
    for first in range(0, len(jobs), BATCH):
        batch_start = trio.current_time()
        batch_hops: list[int] = []
        latency: list[float] = []
        async with trio.open_nursery() as batch:
            for job in jobs[first : first + BATCH]:
                batch.start_soon(_lookup, mesh, job, tally, batch_hops, latency)
        tally.hops += batch_hops
        tally.series["hours"].append(round(batch_start / 3600, 4))
        tally.series["lookup_hops"].append(round(sum(batch_hops) / len(batch_hops), 3))
        tally.series["lookup_latency_ms"].append(round(1000 * sum(latency) / len(latency), 1))
        await trio.sleep_until(batch_start + BATCH_EVERY)
    return tally


def _metrics(
    mesh: SimMesh, params: LookupsParams, tally: Tally, join_messages: int
) -> dict[str, Any]:
    return {
        "k": mesh.dht.k,
        "alpha": mesh.dht.alpha,
        "found_true_closest": tally.found_closest / max(params.lookups, 1),
        "found_all_k_closest": tally.found_all / max(params.lookups, 1),
        "hops_median": median(tally.hops),
        "hops_p99": percentile(tally.hops, 0.99),
        "messages_per_lookup_median": median(tally.messages),
        "messages_per_lookup_p99": percentile(tally.messages, 0.99),
        "join_messages_per_peer": join_messages / max(params.peers, 1),
        "simulated_seconds": round(trio.current_time(), 3),
    }


async def run_lookups(params: LookupsParams, progress: Progress | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        mesh = await SimMesh.create(nursery, params.seed, encode=params.peers <= 2000)
        await mesh.grow(params.peers, concurrency=params.join_concurrency)
        if progress is not None:
            progress(f"lookups: {params.peers} peers joined")
        join_messages = mesh.network.stats.sent
        await trio.sleep(SETTLE_SECONDS)
        rng = random.Random(params.seed ^ 0x5EED)
        live = mesh.live()
        jobs = [(rng.choice(live), rng.randbytes(20)) for _ in range(params.lookups)]
        tally = await _batches(mesh, jobs)
        metrics = _metrics(mesh, params, tally, join_messages)
        simulated = trio.current_time()
        mesh.stop()
    wall = time.perf_counter() - started
    return {
        "scenario": "lookups",
        "seed": params.seed,
        "summary": SUMMARY,
        "params": {"peers": params.peers, "lookups": params.lookups},
        "metrics": metrics,
        "series": tally.series,
        "wall_seconds": round(wall, 2),
        "sim_seconds_per_wall_second": round(simulated / max(wall, 1e-9), 1),
    }
