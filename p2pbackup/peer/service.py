"""A real peer as a service: TCP transport, control socket, signals.

`serve` runs this in the foreground until SIGINT or SIGTERM; everything it
starts lives in one nursery, so a signal cancels it all and the control
socket and state file are gone when it returns. A SIGKILL leaves them
behind; the next start on the home removes them once it holds the home's
lock (`Home.claim`), so no cleanup by hand is ever needed.

What happens while it runs (listening, joined, each owner's request, each
maintenance round, stopping) goes to `on_event` as one map per event, for
`serve --json` (decision 0036).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import trio

from p2pbackup.base.sizes import DEFAULT_OWNER_QUOTA, format_size, parse_quota
from p2pbackup.crypto.identity import Identity
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.dht.record_store import RecordStore
from p2pbackup.dht.records import RecordKind, set_record, value_record
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.maintainer import Maintainer
from p2pbackup.mesh.saved import SavedMesh
from p2pbackup.net.contact import format_address
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.peer.addresses import keep_addresses
from p2pbackup.peer.contracts import Args, plain
from p2pbackup.peer.control import ControlServer, Operation, Progress, endpoint
from p2pbackup.peer.edges import map_port, meet_neighbours
from p2pbackup.peer.home import Home
from p2pbackup.peer.membership import Membership
from p2pbackup.peer.memory_file import MemoryFile
from p2pbackup.peer.mesh_control import load_gate, mesh_operations, starting_addresses
from p2pbackup.peer.owner import OwnerService
from p2pbackup.peer.peer import Peer, PeerConfig
from p2pbackup.peer.relaying import Relaying
from p2pbackup.peer.requests import NoArgs, RecordGetRequest, RecordPutRequest
from p2pbackup.peer.results import (
    KnownPeer,
    PeerList,
    PeerState,
    RecordFound,
    RecordWritten,
    StatusResult,
)
from p2pbackup.peer.serve_options import ServeOptions
from p2pbackup.shares.audit_log import AuditLog
from p2pbackup.shares.fetch_rules import SiblingCheck
from p2pbackup.shares.holder import HOLDER_REQUESTS, ShareHolder
from p2pbackup.shares.mesh_packs import WHOLE_MESH_SECONDS
from p2pbackup.shares.redundancy import Redundancy, redundancy_of
from p2pbackup.store import FileShareStore

log = logging.getLogger("p2pbackup.service")

# Told of each event as it happens; `serve --json` prints them as JSON Lines.
EventSink = Callable[[dict[str, Any]], None]
# Questions a script polls (`status --wait`): answering them is not an event.
QUIET_OPERATIONS = frozenset({"status", "peers"})
# What a finished request's event repeats of its answer (the rest is the client's).
_SUMMARY = ("short_id", "files", "files_restored", "files_failed", "bytes", "unrecoverable")
# A peer in the table unheard this many refresh intervals is shown as quiet by `peers`.
QUIET_INTERVALS = 2


class PeerService:
    """One running peer of a home, with its control operations."""

    def __init__(
        self,
        home: Home,
        options: ServeOptions,
        rng: random.Random,
        on_event: EventSink | None = None,
    ) -> None:
        """`rng` seeds the peer's, the maintainer's and the owner's generators."""
        self.home = home
        self.options = options
        self.on_event = on_event
        identity = home.identity()
        # First of all: a second peer on this home stops here, before it opens anything.
        self.claim = home.claim()
        try:
            self._build(identity, rng)
        except BaseException:
            self._close_stores()
            self.claim.release()
            raise

    def _build(self, identity: Identity, rng: random.Random) -> None:
        home, options = self.home, self.options
        gate, mesh = load_gate(home, identity)
        self.transport = TcpTransport(identity, options.listen, gate=gate)
        # A member that joined by invite starts from the members it was given.
        bootstrap = starting_addresses(home, mesh, options.bootstrap)
        config = PeerConfig(dht=options.dht, bootstrap=bootstrap)
        # Records outlive a restart or a power cut: decision 0025.
        self.records = RecordStore.on_disk(home.records_file)
        try:
            self.own_records = RecordStore.on_disk(home.own_records_file)
        except BaseException:
            self.records.close()
            raise
        self.peer = Peer(
            identity, self.transport, config, _child_of(rng), self.records, self.own_records
        )
        self._connect_edges(mesh, rng)
        self.owner = self._owner(rng)
        quota = options.owner_quota
        if quota is None:
            quota = parse_quota(DEFAULT_OWNER_QUOTA, options.capacity)
        self.shares = FileShareStore(home.shares_dir, options.capacity, quota)
        own_owner = self.owner.keys.identity.public_key if self.owner is not None else None
        audit_log = AuditLog()
        holder = ShareHolder(
            self.shares,
            own_owner=own_owner,
            audit_log=audit_log,
            max_lease=options.max_lease,
            siblings=SiblingCheck(self.peer.dht, _child_of(rng)),
        )
        for kind in HOLDER_REQUESTS:
            self.peer.add_handler(kind, holder.handle)
        maintenance = dataclasses.replace(options.maintenance, max_lease=options.max_lease)
        self.maintainer = Maintainer(
            self.peer.dht, self.shares, maintenance, _child_of(rng), audit_log=audit_log
        )
        self.memory = MemoryFile(home.maintenance_file, self.maintainer)
        self.maintainer.after_round = self._after_round
        self.peer.add_task(self.maintainer.run)

    def _owner(self, rng: random.Random) -> OwnerService | None:
        """The owner's side of this peer, when its home holds owner keys."""
        home, options = self.home, self.options
        master = home.owner_master()
        if master is None:
            return None
        lease = options.lease_seconds

        def settings() -> Redundancy:  # read at each backup: `config set` needs no restart
            return redundancy_of(home.owner_settings(), lease)

        redundancy = settings()
        owner = OwnerService(
            OwnerKeys.from_master(master),
            self.peer.dht,
            home.catalog_file,
            redundancy,
            renew_interval=options.renew_interval,
            engine_process=True,
            clock=time.monotonic,
            rng=_child_of(rng),
            settings=settings,
            whole_mesh_seconds=WHOLE_MESH_SECONDS,
        )
        self.peer.add_task(owner.upkeep.keep_leases)
        if owner.engines is not None:
            self.peer.add_task(owner.engines.keep_one_ready)
        return owner

    def _connect_edges(self, mesh: SavedMesh | None, rng: random.Random) -> None:
        """How this peer is reached and finds others: checked addresses, LAN neighbours,
        the router's port mapping, membership and relays (decisions 0037-0042)."""
        home, options = self.home, self.options
        self.addresses = keep_addresses(
            self.peer, self.transport, options.advertise, _child_of(rng)
        )
        if options.lan_discovery:
            meet_neighbours(self.peer, self.transport, mesh)
        self.port_mapper = (
            map_port(
                self.peer,
                options.listen,
                options.port_mapping_lease,
                self.addresses.state.set_mapped,
                _child_of(rng),
            )
            if options.port_mapping
            else None
        )
        self.membership = (
            None
            if mesh is None
            else Membership(
                home,
                mesh,
                self.peer,
                addresses=self._addresses,
                disconnect=self.transport.disconnect,
                rng=_child_of(rng),
            )
        )
        self.relaying = Relaying(self.peer, self.transport, options.relay, self._event)
        if options.relay.only:  # to be reached through relays alone: they advertise
            self.addresses.advertise = lambda main, routes: None
        else:  # reachability decides when relays are needed, and advertises their routes
            self.relaying.on_routes = self.addresses.state.set_relays
            self.addresses.on_relays_needed = self.relaying.need_relays

    def operations(self) -> dict[str, Operation]:
        operations: dict[str, Operation] = {
            "status": endpoint(NoArgs.from_args, self._status),
            "peers": endpoint(NoArgs.from_args, self._peers),
            "record_put": endpoint(RecordPutRequest.from_args, self._record_put),
            "record_get": endpoint(RecordGetRequest.from_args, self._record_get),
            **mesh_operations(self.membership),
        }
        if self.owner is not None:
            operations.update(self.owner.operations())
        else:
            for name in ("backup", "snapshots", "ls", "restore"):
                operations[name] = self._no_owner
        if self.on_event is None:
            return operations
        return {
            name: op if name in QUIET_OPERATIONS else self._reported(name, op)
            for name, op in operations.items()
        }

    def _event(self, name: str, **fields: Any) -> None:
        if self.on_event is not None:
            self.on_event({"event": name, "time": round(time.time(), 3), **fields})

    def _reported(self, name: str, operation: Operation) -> Operation:
        """`operation`, with an event when it starts and one when it ends, either way."""

        async def reported(args: Args, progress: Progress) -> dict[str, Any]:
            self._event("request_started", op=name)
            started = time.monotonic()
            outcome: dict[str, Any] = {"ok": False}
            try:
                answer = await operation(args, progress)
                outcome = {"ok": True, **{k: answer[k] for k in _SUMMARY if k in answer}}
                return answer
            except Exception as exc:
                outcome["error"] = str(exc) if isinstance(exc, P2PBackupError) else "internal"
                raise
            finally:
                seconds = round(time.monotonic() - started, 3)
                self._event("request_finished", op=name, seconds=seconds, **outcome)

        return reported

    async def _after_round(self) -> None:
        await self.memory.save()
        self._event("maintenance_round", **self.maintainer.stats.as_dict())

    async def _report_joined(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await self.peer.joined.wait()
        self._event("joined", routing_table_size=len(self.peer.dht.table))

    async def _no_owner(self, args: Args, progress: Progress) -> dict[str, Any]:
        raise P2PBackupError(
            "this home holds no owner key; it was initialised before owners existed "
            "or with `init --peer-only`"
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        control = ControlServer(self.home.control_socket, self.operations())
        self.memory.load()
        try:
            async with trio.open_nursery() as nursery:
                # Handle SIGTERM before anyone can learn this peer runs (the state file).
                await nursery.start(self._stop_on_signal, nursery.cancel_scope)
                await nursery.start(self.peer.run)
                await nursery.start(control.serve)
                self.home.write_state(plain(self._state()))
                log.info("peer %s listening on %s:%d", *self._ident())
                self._event("listening", **plain(self._state()))
                await nursery.start(self._report_joined)
                task_status.started()
        finally:
            self.home.state_file.unlink(missing_ok=True)
            self.memory.save_now()
            if self.membership is not None:
                self.membership.save_now()
            self._close_stores()
            self.claim.release()
            self._event("stopped")

    def _close_stores(self) -> None:
        """Close what `_build` opened, as far as it got."""
        for name in ("shares", "records", "own_records"):
            store = getattr(self, name, None)
            if store is not None:
                store.close()
        owner = getattr(self, "owner", None)
        if owner is not None:
            owner.close()

    def _addresses(self) -> list[str]:
        """Where others reach this peer, for invites and newcomers: the main address first."""
        main = format_address(self.transport.listen)
        routes = [format_address(r.address) for r in self.transport.routes if r.relay is None]
        return [main, *(r for r in routes if r != main)]

    def _ident(self) -> tuple[str, str, int]:
        host, port = self.transport.listen
        return self.peer.node_id.hex(), host, port

    def _state(self) -> PeerState:
        node_id, host, port = self._ident()
        return PeerState(node_id, format_address((host, port)), os.getpid())

    async def _stop_on_signal(
        self,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                log.info("stopping on %s", signal.Signals(signum).name)
                self._event("stopping", signal=signal.Signals(signum).name)
                scope.cancel()
                return

    # ---- control operations -------------------------------------------

    async def _status(self, request: NoArgs, progress: Progress) -> StatusResult:
        owner = self.owner.keys.identity.public_key.hex() if self.owner is not None else None
        # What owners can still place here: capacity or disk, whichever is less.
        free, disk_free = await trio.to_thread.run_sync(
            lambda: (self.shares.free_bytes, self.shares.disk_free())
        )
        return StatusResult(
            state=self._state(),
            routing_table_size=len(self.peer.dht.table),
            records_held=len(self.peer.dht.records),
            joined=self.peer.joined.is_set(),
            shares_held=self.shares.stats().get("shares", 0),
            bytes_used=self.shares.used_bytes,
            capacity=self.shares.capacity,
            capacity_human=format_size(self.shares.capacity),
            free=free,
            free_human=format_size(free),
            disk_free=disk_free,
            maintenance=self.maintainer.stats.as_dict(),
            owner=owner,
            port_mapping=None if self.port_mapper is None else self.port_mapper.status(),
            reachability=self.addresses.state.summary(trio.current_time()),
        )

    async def _peers(self, request: NoArgs, progress: Progress) -> PeerList:
        """The routing table's contacts, each with how long ago it last showed life."""
        table, now, wall = self.peer.dht.table, trio.current_time(), time.time()
        peers = []
        for contact in table:
            heard = table.heard(contact.node_id)
            ago = None if heard is None else round(max(now - heard, 0.0), 1)
            seen = None if ago is None else round(wall - ago, 1)
            peers.append(
                KnownPeer(contact.node_id.hex(), format_address(contact.address), seen, ago)
            )
        quiet_after = QUIET_INTERVALS * self.options.dht.refresh_interval
        return PeerList(sorted(peers, key=lambda p: p.node_id), quiet_after)

    async def _record_put(self, request: RecordPutRequest, progress: Progress) -> RecordWritten:
        identity = self.peer.identity
        if request.kind == "set":
            record = set_record(identity, request.name, [request.value])
        else:
            current = await self.peer.dht.get(value_record(identity, request.name, 0, b"").key)
            seq = 0 if current is None else current.seq + 1
            record = value_record(identity, request.name, seq, request.value)
        write = await self.peer.dht.publish(record)
        return RecordWritten(record.key.hex(), record.seq, len(write.acks))

    async def _record_get(self, request: RecordGetRequest, progress: Progress) -> RecordFound:
        record = await self.peer.dht.get(request.key)
        if record is None:
            return RecordFound(found=False)
        return RecordFound(
            found=True,
            owner=record.owner.hex(),
            name=record.name,
            kind="set" if record.kind is RecordKind.SET else "value",
            seq=record.seq,
            values=sorted(record.values),
        )


def _child_of(rng: random.Random) -> random.Random:
    """A generator of its own for one part of the peer, drawn from the process's."""
    return random.Random(rng.getrandbits(64))
