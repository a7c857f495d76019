"""Scenario `lookups`: do iterative lookups find the true closest peers?

N peers join one after another through a single bootstrap peer, the mesh
settles, then L lookups for random keys start from random peers. Each result
is compared with the ground truth (the k live peers closest to the key).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import trio

from simulations.mesh import SimMesh
from simulations.stats import median, percentile

SETTLE_SECONDS = 60.0
CONCURRENT_LOOKUPS = 20


@dataclass(frozen=True)
class LookupsParams:
    peers: int = 1000
    lookups: int = 200
    seed: int = 1
    join_concurrency: int = 25


async def run_lookups(params: LookupsParams) -> dict[str, Any]:
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        mesh = await SimMesh.create(nursery, params.seed, encode=params.peers <= 2000)
        await mesh.grow(params.peers, concurrency=params.join_concurrency)
        join_messages = mesh.network.stats.sent
        await trio.sleep(SETTLE_SECONDS)
        rng = random.Random(params.seed ^ 0x5EED)
        jobs = [(rng.choice(mesh.live()), rng.randbytes(20)) for _ in range(params.lookups)]
        found_closest = found_all = 0
        hops: list[int] = []
        messages: list[int] = []
        limiter = trio.Semaphore(CONCURRENT_LOOKUPS)
        k = mesh.dht.k

        async def one(source_index: int) -> None:
            nonlocal found_closest, found_all
            source, target = jobs[source_index]
            async with limiter:
                outcome = await source.peer.dht.lookup(target)
            truth = [n for n in mesh.true_closest(target, k + 1) if n != source.node_id][:k]
            got = {c.node_id for c in outcome.contacts}
            found_closest += truth[0] in got
            found_all += set(truth) <= got
            hops.append(outcome.stats.hops)
            messages.append(outcome.stats.queries)

        async with trio.open_nursery() as lookups:
            for index in range(len(jobs)):
                lookups.start_soon(one, index)
        result = {
            "scenario": "lookups",
            "seed": params.seed,
            "peers": params.peers,
            "lookups": params.lookups,
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
        mesh.stop()
    result["wall_seconds"] = round(time.perf_counter() - started, 2)
    return result
