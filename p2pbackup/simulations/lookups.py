"""Scenario `lookups`: do iterative lookups find the true closest peers?

N peers join one after another through a single bootstrap peer, the mesh
settles, then L lookups for random keys start from random peers, in batches
ten simulated minutes apart. Each result is compared with the ground truth
(the k live peers closest to the key); hops and latency are kept per batch.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import trio

from p2pbackup.simulations.mesh import SimMesh
from p2pbackup.simulations.stats import median, percentile
from p2pbackup.simulations.world import Progress

SUMMARY = "do iterative lookups find the true k closest peers, and in how many hops?"
SETTLE_SECONDS = 60.0
BATCH = 20
BATCH_EVERY = 600.0


@dataclass(frozen=True)
class LookupsParams:
    peers: int = 1000
    lookups: int = 200
    seed: int = 1
    join_concurrency: int = 25


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
        jobs = [(rng.choice(mesh.live()), rng.randbytes(20)) for _ in range(params.lookups)]
        found_closest = found_all = 0
        hops: list[int] = []
        messages: list[int] = []
        series: dict[str, list[Any]] = {"hours": [], "lookup_hops": [], "lookup_latency_ms": []}
        k = mesh.dht.k

        async def one(index: int, batch_hops: list[int], latency: list[float]) -> None:
            nonlocal found_closest, found_all
            source, target = jobs[index]
            began = trio.current_time()
            outcome = await source.peer.dht.lookup(target)
            latency.append(trio.current_time() - began)
            truth = [n for n in mesh.true_closest(target, k + 1) if n != source.node_id][:k]
            got = {c.node_id for c in outcome.contacts}
            found_closest += truth[0] in got
            found_all += set(truth) <= got
            batch_hops.append(outcome.stats.hops)
            messages.append(outcome.stats.queries)

        for first in range(0, len(jobs), BATCH):
            batch_start = trio.current_time()
            batch_hops: list[int] = []
            latency: list[float] = []
            async with trio.open_nursery() as batch:
                for index in range(first, min(first + BATCH, len(jobs))):
                    batch.start_soon(one, index, batch_hops, latency)
            hops += batch_hops
            series["hours"].append(round(batch_start / 3600, 4))
            series["lookup_hops"].append(round(sum(batch_hops) / len(batch_hops), 3))
            series["lookup_latency_ms"].append(round(1000 * sum(latency) / len(latency), 1))
            await trio.sleep_until(batch_start + BATCH_EVERY)
        metrics = {
            "k": k,
            "alpha": mesh.dht.alpha,
            "found_true_closest": found_closest / max(params.lookups, 1),
            "found_all_k_closest": found_all / max(params.lookups, 1),
            "hops_median": median(hops),
            "hops_p99": percentile(hops, 0.99),
            "messages_per_lookup_median": median(messages),
            "messages_per_lookup_p99": percentile(messages, 0.99),
            "join_messages_per_peer": join_messages / max(params.peers, 1),
            "simulated_seconds": round(trio.current_time(), 3),
        }
        simulated = trio.current_time()
        mesh.stop()
    wall = time.perf_counter() - started
    params_out = {"peers": params.peers, "lookups": params.lookups}
    return {
        "scenario": "lookups",
        "seed": params.seed,
        "summary": SUMMARY,
        "params": params_out,
        "metrics": metrics,
        "series": series,
        "wall_seconds": round(wall, 2),
        "sim_seconds_per_wall_second": round(simulated / max(wall, 1e-9), 1),
    }
