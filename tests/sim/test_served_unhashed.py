"""A holder hands a share out without hashing it whole (decision 0057): whoever fetches
it checks it against the root the owner signed, so a share that rotted on a holder's
disk is refused by the owner, and the pack comes back from the other holders."""

from __future__ import annotations

from pathlib import Path

import trio

from p2pbackup.base.offload import inline
from p2pbackup.net.transport import Remote
from p2pbackup.shares.holder import HOLDER_REQUESTS, ShareHolder
from p2pbackup.shares.messages import GetShare, ShareData
from p2pbackup.store import FileShareStore
from p2pbackup.wire.messages import Message
from tests.sim.helpers import KEYS, by_id, equipped_mesh, holders, owner_store, place_pack


async def test_a_rotted_share_is_served_unhashed_and_refused_by_the_owner(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    mesh, stores = await equipped_mesh(nursery, 20, seed=31)
    data, pack_id = await place_pack(mesh, 150_000)
    # The holder of data share 0 moves its share to a store on disk, where it rots.
    node_id = next(nid for nid, indices in holders(stores, pack_id).items() if indices == [0])
    held = stores[node_id].get(pack_id, 0, KEYS.identity.public_key)
    assert held is not None
    disk = FileShareStore(tmp_path, 2**30)
    disk.put(pack_id, 0, held.data, held.descriptor, held.owner, held.lease_expiry, held.stored_at)
    path = disk.path_of(pack_id, 0, KEYS.identity.public_key)
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 1
    path.write_bytes(bytes(blob))
    holder = ShareHolder(disk, run_sync=inline)
    served: list[bytes] = []

    async def handle(remote: Remote, message: Message) -> Message:
        reply = await holder.handle(remote, message)
        if isinstance(message, GetShare) and isinstance(reply, ShareData):
            served.append(reply.data)
        return reply

    for kind in HOLDER_REQUESTS:
        by_id(mesh)[node_id].peer.add_handler(kind, handle)
    assert await owner_store(mesh.peers[0]).get(pack_id) == data
    # It was handed out as it lies on disk, rot and all, not hashed and dropped ...
    assert served == [bytes(blob[-len(held.data) :])] and served[0] != held.data
    # ... and is still held: the next audit, which hashes it, finds the rot.
    assert disk.has(pack_id, 0, KEYS.identity.public_key)
    assert disk.prove(pack_id, 0, KEYS.identity.public_key, 0) is None
    assert not disk.has(pack_id, 0, KEYS.identity.public_key)
    disk.close()
