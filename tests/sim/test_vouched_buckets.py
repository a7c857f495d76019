"""A joined peer can vouch for every part of the id space it knows (decision 0060).

A peer hands out only contacts that answered it (decision 0023). Joining
fills far buckets with hearsay; a bucket holding nothing else leaves the
peer with no answer into that part of the id space until someone's query
there has it check them, and that first query gets the wrong neighbourhood:
in a day-long churn run of 1,000 peers the owner's restore asked 34 peers
for a pack and none held it, while all ten holders were up.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from p2pbackup.dht.config import DhtConfig
from p2pbackup.simulations.mesh import SimMesh

# As the storage scenarios run: buckets refreshed daily, so a refresh mends nothing here.
DAILY = DhtConfig(rpc_timeout=2.0, refresh_interval=86_400.0, republish_interval=21_600.0)


@pytest.mark.trio
async def test_every_known_bucket_holds_a_contact_the_peer_can_vouch_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        mesh = await SimMesh.create(nursery, 7, dht=DAILY, encode=False)
        await mesh.grow(200, concurrency=25)
        await trio.sleep(60.0)  # the checks queued at the joins are done by now
        silent: list[tuple[str, int]] = []
        for sim_peer in mesh.live():
            dht = sim_peer.peer.dht
            buckets: dict[int, bool] = {}
            for contact in dht.table:
                index = dht.table.bucket_index(contact.node_id)
                buckets[index] = buckets.get(index, False) or dht.peers.verified(contact)
            silent += [(sim_peer.node_id.hex()[:8], i) for i, ok in buckets.items() if not ok]
        assert silent == []
        mesh.stop()
        nursery.cancel_scope.cancel()
