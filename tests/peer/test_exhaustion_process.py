"""Finding 4 against a real peer process: while hostile identities, speaking the
project's own handshake and frames, run all four exhaustion attacks on one storage
peer at once, an honest owner's backup succeeds, the restore matches, and the
attacked process's memory stays under a stated bound.

The attacks, scaled to a test: big STORE_RECORD frames pipelined from several
identities; GET_SHARE of a share the attacker put itself (so it is served), asked
over and over with no reply ever read; big frames whose prefix is sent and whose
bytes then trickle; and idle connections that never start a handshake, more than
the victim's (lowered) descriptor limit allows. Each attack reconnects when the
victim closes it, so the pressure lasts while the owner works.

Measured (2 CPUs, loopback, six runs): the victim idles near 57 MB and peaked at
378-490 MB under all four attacks at once (VmHWM), against 1.1-1.9 GB for each
attack alone before the transport bounds, and 1,177 MB here with the shared budget
raised to 1 GiB; the bound asserted is 600 MB. The backup
took 0.6 s without the attack and about 31 s under it: the owner's share to the
victim waits for room in the spent budget until its frame deadline, and the backup
completes on the other holders' proofs.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import sqlite3
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio

from p2pbackup.base.ids import PACK_ID_BYTES
from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh, LocalPeer
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import StoreRecord
from p2pbackup.dht.records import MAX_VALUE, set_record
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.handshake import SecureChannel
from p2pbackup.shares.fetch_rules import owner_fetch
from p2pbackup.shares.messages import ShareStored
from p2pbackup.simulations.hostile import junk_shares
from p2pbackup.wire.frames import DEFAULT_MAX_FRAME, FrameDecoder, encode_frame
from p2pbackup.wire.messages import Message, decode_message, encode_message
from tests.net.bounds_support import authenticate, read_frame
from tests.peer.trees import random_files

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PEERS = 11  # the owner and ten storage peers, one of them attacked
OWNER = 0
VICTIM = 1
VICTIM_DESCRIPTORS = 256
BOUND_MB = 600
PRESSED_MB = 150
# Scale of each attack.
RECORD_IDENTITIES = 6
RECORDS_PER_ROUND = 24  # pipelined on one connection
RECORD_BYTES = 2 * 1024 * 1024 - 64 * 1024  # each, just under the largest a record may be
FETCH_IDENTITIES = 3
FETCH_CONNECTIONS = 2  # per fetching identity
FETCHES = 64  # GET_SHARE pipelined on each, replies never read
SHARE_BYTES = 4 * 1024 * 1024
SLOW_FRAMES = 96
SLOW_HEAD = 7 * 1024 * 1024  # of each 8 MiB frame sent at once; the rest trickles
IDLE = 2 * VICTIM_DESCRIPTORS
# A victim hanging up on an attacker (`read_frame` asserts when it does mid-handshake).
GONE = (
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    OSError,
    P2PBackupError,
    AssertionError,
)


@contextlib.contextmanager
def descriptor_limit(limit: int) -> Iterator[None]:
    """Processes started inside the block inherit a soft open-file limit of `limit`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    # An open mesh: the attackers are identities the handshake admits, as members would be.
    serve = ("--rpc-timeout", "2s")
    with LocalMesh(tmp_path / "mesh", PEERS, serve_args=serve, open_mesh=True) as started:
        started.init_all()
        started.start_peer(OWNER, bootstrap=None)
        with descriptor_limit(VICTIM_DESCRIPTORS):
            started.start_peer(VICTIM, wait=False)
        for peer in started.peers[2:]:
            started.start_peer(peer.index, wait=False)
        for peer in started.peers[1:]:
            started.wait_listening(peer.index)
        started.wait_for_tables()
        yield started


def address(peer: LocalPeer) -> tuple[str, int]:
    assert peer.listen is not None
    host, port = peer.listen.rsplit(":", 1)
    return host, int(port)


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def owner_shares(peer: LocalPeer) -> int:
    """How many shares the peer holds for owners other than the attackers (the honest one)."""
    db = sqlite3.connect(f"file:{peer.home / 'shares' / 'index.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT owner, COUNT(*) FROM shares GROUP BY owner").fetchall()
    finally:
        db.close()
    return max((count for owner, count in rows if count > 1), default=0)


def sealed(channel: SecureChannel, request_id: int, message: Message) -> bytes:
    return encode_frame(channel.seal(encode_message(request_id, message)), 1 << 30)


class Attacks:
    """The four exhaustion attacks on one address, each reconnecting when closed."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sent = 0  # bytes the attackers set out to send
        self.connections = 0
        self.slow_head = struct.pack(">I", DEFAULT_MAX_FRAME) + bytes(SLOW_HEAD)  # sent uncopied

    async def _connect(self) -> trio.SocketStream:
        self.connections += 1
        return await trio.open_tcp_stream(*self.target)

    async def _again(
        self, pause: float, once: Callable[..., Awaitable[None]], *args: object
    ) -> None:
        """Run `once` on a new connection, and again each time the victim ends it."""
        while True:
            try:
                async with await self._connect() as stream:
                    await once(stream, *args)
            except* GONE:
                pass
            await trio.sleep(pause)

    async def _records(self, stream: trio.SocketStream, identity: Identity) -> None:
        value = bytes(MAX_VALUE)
        count = RECORD_BYTES // MAX_VALUE
        records = [
            set_record(identity, b"junk%d" % r, [value[:-1] + bytes([i]) for i in range(count)])
            for r in range(4)
        ]
        channel = await authenticate(stream, identity)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, stream)
            for n in range(RECORDS_PER_ROUND):
                frame = sealed(channel, 2 * n, StoreRecord(records[n % len(records)]))
                self.sent += len(frame)
                await stream.send_all(frame)
            nursery.cancel_scope.cancel()

    async def put_share(self, identity: Identity) -> Message:
        """Put a share of the attacker's own pack; the request that fetches it back."""
        pack_id = random.Random(identity.public_key).randbytes(PACK_ID_BYTES)
        put = junk_shares(identity, pack_id, 2, data=os.urandom(SHARE_BYTES))[0]
        async with await self._connect() as stream:
            channel = await authenticate(stream, identity)
            await stream.send_all(sealed(channel, 0, put))
            reply = await read_frame(stream, FrameDecoder(DEFAULT_MAX_FRAME))
            assert isinstance(decode_message(channel.open(reply))[1], ShareStored)
        return owner_fetch(identity, pack_id, identity.node_id)

    async def _fetch_unread(
        self, stream: trio.SocketStream, identity: Identity, fetch: Message
    ) -> None:
        channel = await authenticate(stream, identity)
        frames = b"".join(sealed(channel, 2 * n, fetch) for n in range(FETCHES))
        self.sent += len(frames)
        await stream.send_all(frames)  # and never reads a reply
        await trio.sleep_forever()

    async def _slow_frame(self, stream: trio.SocketStream) -> None:
        await authenticate(stream)
        self.sent += SLOW_HEAD
        await stream.send_all(self.slow_head)
        while True:
            await stream.send_all(b"\0")
            await trio.sleep(1.0)

    async def run(self) -> None:
        fetchers = [Identity.generate() for _ in range(FETCH_IDENTITIES)]
        fetches = [await self.put_share(identity) for identity in fetchers]
        async with trio.open_nursery() as nursery:
            for _ in range(IDLE):
                nursery.start_soon(self._again, 1.0, _drain)
            for _ in range(RECORD_IDENTITIES):
                nursery.start_soon(self._again, 0.1, self._records, Identity.generate())
            for identity, fetch in zip(fetchers, fetches, strict=True):
                for _ in range(FETCH_CONNECTIONS):
                    nursery.start_soon(self._again, 0.1, self._fetch_unread, identity, fetch)
            for _ in range(SLOW_FRAMES):
                nursery.start_soon(self._again, 0.1, self._slow_frame)


async def _drain(stream: trio.SocketStream) -> None:
    """Read and discard until the far end closes."""
    while await stream.receive_some(65536):
        pass


async def sample_rss(pid: int, peak: list[int]) -> None:
    while True:
        peak[0] = max(peak[0], memory_kb(pid, "VmRSS"))
        await trio.sleep(0.1)


async def timed_cli(mesh: LocalMesh, *args: str) -> float:
    start = time.monotonic()
    await trio.to_thread.run_sync(lambda: mesh.cli_json(OWNER, *args))
    return time.monotonic() - start


async def test_a_peer_under_every_exhaustion_attack_stays_bounded_and_serves_a_backup(
    tmp_path: Path, mesh: LocalMesh
) -> None:
    victim = mesh.peers[VICTIM]
    assert victim.process is not None
    pid = victim.process.pid
    rng = random.Random(4)
    calm = random_files(tmp_path / "calm", 4, 1_000_000, rng)
    attacked = random_files(tmp_path / "attacked", 4, 1_000_000, rng)
    calm_seconds = await timed_cli(mesh, "backup", str(calm))
    idle_mb = memory_kb(pid, "VmRSS") / 1024
    held_before = owner_shares(victim)
    attacks = Attacks(address(victim))
    peak = [0]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(attacks.run)
        nursery.start_soon(sample_rss, pid, peak)
        # The owner starts once the attacks bite: the victim holds PRESSED MB more than idle.
        with trio.fail_after(90):
            while peak[0] / 1024 < idle_mb + PRESSED_MB or attacks.connections < IDLE:
                await trio.sleep(0.1)
        attacked_seconds = await timed_cli(mesh, "backup", str(attacked))
        target = tmp_path / "back"
        await timed_cli(mesh, "restore", "latest", "--target", str(target))
        # And every trickled frame's head has been offered, whatever the owner's speed.
        with trio.fail_after(90):
            while attacks.sent < SLOW_FRAMES * SLOW_HEAD:
                await trio.sleep(0.1)
        assert victim.alive, mesh.log_tail(VICTIM)
        nursery.cancel_scope.cancel()
    hwm_mb = memory_kb(pid, "VmHWM") / 1024
    print(
        f"victim idle {idle_mb:.0f} MB, peak RSS {peak[0] / 1024:.0f} MB, VmHWM {hwm_mb:.0f} MB;"
        f" backup {calm_seconds:.1f}s calm, {attacked_seconds:.1f}s attacked;"
        f" attackers sent {attacks.sent / 2**20:.0f} MiB over {attacks.connections} connections;"
        f" victim's honest shares {held_before} -> {owner_shares(victim)}"
    )
    files, _, problems = compare_trees(attacked, target / attacked.name)
    assert files == 4 and problems == []
    assert hwm_mb < BOUND_MB
