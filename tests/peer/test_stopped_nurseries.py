"""What arrives after a part of a peer stopped is dropped or done in place, never
started in the part's closed nursery ("Nursery is closed to new arrivals" would end
`serve` with a traceback): a task added to a stopped peer, a LAN finding, a
revocation pushed to a member."""

from __future__ import annotations

import random
from pathlib import Path

import trio
import trio.testing

from p2pbackup.crypto.identity import Identity
from p2pbackup.mesh.certs import Revocation
from p2pbackup.mesh.messages import RollPush
from p2pbackup.mesh.saved import founded
from p2pbackup.net.lan_announce import OPEN_TAG, Finding
from p2pbackup.net.sim import SimNetwork
from p2pbackup.net.transport import Remote
from p2pbackup.peer.home import Home
from p2pbackup.peer.lan import LanMeetings
from p2pbackup.peer.membership import Membership
from p2pbackup.peer.peer import Peer, PeerConfig
from tests.net.lan_support import Silent

NOW = 1_800_000_000


def _peer(network: SimNetwork, host: str) -> Peer:
    identity = Identity.generate()
    return Peer(identity, network.transport(identity, (host, 4000)), PeerConfig(), random.Random(1))


async def _run_then_stop(nursery: trio.Nursery, run: object) -> None:
    """Start `run` in a scope of its own and cancel it: the part has stopped."""
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as inner:
            await inner.start(run)  # type: ignore[arg-type]
            scope.cancel()


async def test_a_task_added_to_a_stopped_peer_is_kept_not_started(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    peer = _peer(SimNetwork(random.Random(1)), "10.0.0.1")
    await _run_then_stop(nursery, peer.run)
    started: list[bool] = []

    async def task(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started.append(True)
        task_status.started()

    peer.add_task(task)
    await trio.sleep(1)
    assert started == []


async def test_a_lan_finding_after_the_meetings_stopped_is_dropped(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    network = SimNetwork(random.Random(2))
    meetings = LanMeetings(_peer(network, "10.0.0.1"), OPEN_TAG, discovery=Silent)
    await _run_then_stop(nursery, meetings.run)

    meetings.found(Finding(Identity.generate().node_id, (("10.0.0.2", 4000),)))
    assert not meetings.busy


async def test_a_revocation_after_the_roll_sync_stopped_is_kept_and_pushed_in_place(
    tmp_path: Path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    founder = Identity.generate()
    peer = _peer(SimNetwork(random.Random(3)), "10.0.0.1")
    saved = founded(founder, peer.identity.public_key, "founder", NOW)
    membership = Membership(
        Home(tmp_path),
        saved,
        peer,
        addresses=lambda: [],
        disconnect=lambda node_id: None,
        rng=random.Random(4),
    )
    await _run_then_stop(nursery, membership.keep_in_sync)

    expelled = Identity.generate().public_key
    revocation = Revocation.issue(founder, expelled, NOW + 1)
    pusher = Identity.generate()
    remote = Remote(pusher.node_id, pusher.public_key, ("10.0.0.3", 4000), standing="member")
    await membership.handle(remote, RollPush((revocation.to_bytes(),)))
    assert saved.state is not None and saved.state.roll is not None
    assert saved.state.roll.expelled(expelled)
    assert Home(tmp_path).read_mesh() == saved.to_bytes()
