"""The peer's own commands: serve a home, look at the running peer.

`serve` is the process edge of a peer: it reads the options, seeds the
peer's randomness and runs it in the foreground; with `--json` it prints one
JSON object per event as it happens (JSON Lines on stdout, decision 0036).
The others ask the running peer one question each.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from p2pbackup.base.sizes import DEFAULT_OWNER_QUOTA, parse_quota, parse_size
from p2pbackup.cli import render
from p2pbackup.cli.common import (
    JSON_OPTION,
    STATE,
    USAGE,
    call_peer,
    emit,
    fail,
    show,
    user_errors,
)
from p2pbackup.cli.durations import parse_duration
from p2pbackup.errors import NoPeerRunning, P2PBackupError, sole_error
from p2pbackup.net.contact import parse_address
from p2pbackup.peer.heap import keep_freed_pages
from p2pbackup.peer.requests import RecordGetRequest, RecordPutRequest

if TYPE_CHECKING:
    from p2pbackup.peer.relaying import RelayOptions
    from p2pbackup.peer.service import ServeOptions

MIN_CAPACITY = 1024 * 1024  # a share of a small pack, at least
STATUS_SECONDS = 30.0  # a running peer answers `status` from memory, at once
_LISTEN_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


@user_errors
def serve(
    listen: str = typer.Option(
        "127.0.0.1:7400",
        metavar="HOST:PORT",
        help="Address to accept peers on; 0.0.0.0:PORT or [::]:PORT for every interface.",
    ),
    advertise: list[str] = typer.Option(
        [],
        metavar="HOST:PORT",
        help="How others reach this peer, if not at --listen (repeatable; names allowed). "
        "Checked by other peers before it is advertised.",
    ),
    bootstrap: list[str] = typer.Option(
        [], metavar="HOST:PORT", help="A peer to join through (repeatable)."
    ),
    rpc_timeout: str = typer.Option("5s", metavar="DURATION", help="Deadline of one remote call."),
    refresh_interval: str = typer.Option(
        "1h", metavar="DURATION", help="How often idle buckets are refreshed."
    ),
    republish_interval: str = typer.Option(
        "1h",
        metavar="DURATION",
        help="How often the records this peer signed or holds are written again.",
    ),
    log_level: str = typer.Option("info", metavar="LEVEL", help="debug, info, warning or error."),
    capacity: str = typer.Option(
        "20GiB", metavar="SIZE", help="Disk space offered to other owners' shares."
    ),
    owner_quota: str = typer.Option(
        DEFAULT_OWNER_QUOTA,
        metavar="QUOTA",
        help="Most of --capacity one owner may use: a size, a percentage or a fraction.",
    ),
    audit_interval: str = typer.Option(
        "1h", metavar="DURATION", help="How often held shares are audited and repaired."
    ),
    repair_threshold: int = typer.Option(
        7, help="Rebuild lost shares at once when fewer than this many are live."
    ),
    lease: str = typer.Option(
        "90d", metavar="DURATION", help="How long peers keep this owner's shares unrenewed."
    ),
    renew_interval: str = typer.Option(
        "7d", metavar="DURATION", help="How often this owner renews its leases."
    ),
    max_lease: str = typer.Option(
        "400d", metavar="DURATION", help="Longest lease kept on others' shares."
    ),
    exempt_blocks: str = typer.Option(
        "",
        metavar="KINDS",
        help="Address kinds (loopback,lan) whose every address counts as its own block "
        "in the per-network limits; for meshes on one host or LAN.",
    ),
    vetting: str = typer.Option(
        "3d",
        metavar="DURATION",
        help="How long a peer must answer before it takes shares by rebalancing.",
    ),
    lan_discovery: bool = typer.Option(
        True,
        "--lan-discovery/--no-lan-discovery",
        help="Find the mesh's peers on the LAN by mDNS, and announce this one there.",
    ),
    relay: bool = typer.Option(
        True, "--relay/--no-relay", help="Relay sessions for peers nobody can dial."
    ),
    relay_max_peers: int = typer.Option(
        32, min=0, metavar="N", help="Most peers this relay holds reservations for."
    ),
    relay_rate: str = typer.Option(
        "1MiB/s", metavar="SIZE/s", help="Most this relay carries a second for one peer."
    ),
    relay_total_rate: str = typer.Option(
        "8MiB/s", metavar="SIZE/s", help="Most this relay carries a second for all together."
    ),
    relay_sessions_per_peer: int = typer.Option(
        8, min=1, metavar="N", help="Most relayed sessions to one peer at once."
    ),
    use_relay: list[str] = typer.Option(
        [], metavar="HOST:PORT", help="A relay to reserve with first when relayed (repeatable)."
    ),
    relay_only: bool = typer.Option(
        False, "--relay-only", help="Be reached only through relays, as behind a closed NAT."
    ),
    hole_punch: bool = typer.Option(
        True,
        "--hole-punch/--no-hole-punch",
        help="Try a direct connection to a relayed peer before relaying.",
    ),
    log_file: Path = typer.Option(
        None, "--log-file", metavar="FILE", help="Append the log to FILE instead of stderr."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object per event as it happens (JSON Lines)."
    ),
    no_port_mapping: bool = typer.Option(
        False,
        "--no-port-mapping",
        help="Do not ask the router to forward a port (UPnP IGD, NAT-PMP); "
        "never asked on a loopback address.",
    ),
    port_mapping_lease: str = typer.Option(
        "1h", metavar="DURATION", help="Lease asked of the router; renewed halfway through."
    ),
) -> None:
    """Run this home's peer in the foreground until SIGINT or SIGTERM."""
    import trio  # here: the other commands start without it (`control_client`)

    from p2pbackup.peer.service import PeerService

    options = _serve_options(dict(locals()))
    home = STATE.home
    # The home is its user's alone, now and all the peer creates later: decision 0018.
    os.umask(0o077)
    _start_log(log_level, log_file)
    home.prepare_to_serve()

    async def run() -> None:
        # The process edge: the peer's randomness is seeded from the system here.
        events = _print_event if as_json else None
        await PeerService(home, options, random.Random(), events).run()

    keep_freed_pages()  # every share is a new MiB-sized buffer: decision 0013
    try:
        trio.run(run)
    except (Exception, BaseExceptionGroup) as caught:
        _cannot_listen(caught, listen)
        _log_if_bug(caught)
        raise


def _cannot_listen(caught: BaseException, listen: str) -> None:
    """End `serve` with one line if it could not take its address (trio hands the
    error up wrapped in a group per nursery); return for any other error."""
    exc = sole_error(caught)
    if isinstance(exc, OSError) and exc.errno in _LISTEN_ERRNOS:
        reason = (exc.strerror or str(exc)).lower()
        fail(f"cannot listen on {listen}: {reason}")


def _log_if_bug(caught: BaseException) -> None:
    """Put a bug that stopped the peer in its log, traceback and all: run in the
    background, it has no terminal to show it on."""
    exc = sole_error(caught)
    if not isinstance(exc, P2PBackupError | OSError | KeyboardInterrupt):
        logging.getLogger("p2pbackup").critical("the peer stopped on an error", exc_info=caught)


def _start_log(level: str, path: Path | None) -> None:
    try:
        handler = (
            logging.StreamHandler(sys.stderr)
            if path is None
            # A file name that is not UTF-8 is logged escaped, not dropped with an error.
            else logging.FileHandler(path, encoding="utf-8", errors="backslashreplace")
        )
    except OSError as exc:
        fail(f"cannot write the log to {path}: {exc.strerror or exc}")
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[handler],
    )


def _print_event(event: dict[str, Any]) -> None:
    """One line of JSON on stdout, flushed at once: a reader sees each event as it happens."""
    try:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):  # nobody reads any more; the peer carries on
        pass


def _serve_options(raw: dict[str, Any]) -> ServeOptions:
    """`serve`'s options, parsed and checked; a bad one ends the command in one line."""
    from p2pbackup.dht.config import DhtConfig
    from p2pbackup.maintenance.config import MaintenanceConfig
    from p2pbackup.net.blocks import exempt_kinds
    from p2pbackup.peer.service import ServeOptions

    try:
        exempt = exempt_kinds(raw["exempt_blocks"].split(","))
    except ValueError as exc:
        fail(f"--exempt-blocks: {exc}", USAGE)
    capacity = parse_size(raw["capacity"])
    if capacity < MIN_CAPACITY:  # "50" is 50 bytes: surely 50 GiB was meant
        fail(f"--capacity {raw['capacity']} is {capacity} bytes: give a unit, e.g. 50GiB", USAGE)
    return ServeOptions(
        listen=parse_address(raw["listen"], any_port=True),
        bootstrap=tuple(parse_address(b) for b in raw["bootstrap"]),
        dht=DhtConfig(
            rpc_timeout=parse_duration(raw["rpc_timeout"]),
            refresh_interval=parse_duration(raw["refresh_interval"]),
            republish_interval=parse_duration(raw["republish_interval"]),
            exempt_blocks=exempt,
        ),
        capacity=capacity,
        owner_quota=parse_quota(raw["owner_quota"], capacity),
        maintenance=MaintenanceConfig(
            audit_interval=parse_duration(raw["audit_interval"]),
            repair_threshold=raw["repair_threshold"],
            vetting_period=parse_duration(raw["vetting"]),
        ),
        lease_seconds=max(1, int(parse_duration(raw["lease"]))),
        renew_interval=parse_duration(raw["renew_interval"]),
        max_lease=max(1, int(parse_duration(raw["max_lease"]))),
        port_mapping=not raw["no_port_mapping"],
        port_mapping_lease=max(2, int(parse_duration(raw["port_mapping_lease"]))),
        lan_discovery=raw["lan_discovery"],
        advertise=tuple(_advertised(text) for text in raw["advertise"]),
        relay=_relay_options(raw),
    )


def _advertised(text: str) -> tuple[str, int]:
    """One `--advertise` value; a malformed one ends `serve` in one line (exit 2)."""
    from p2pbackup.net.interfaces import is_wildcard, well_formed_host

    try:
        host, port = parse_address(text)
    except ValueError as exc:
        fail(f"--advertise: {exc}", USAGE)
    if is_wildcard(host) or not well_formed_host(host):
        fail(f"--advertise {text}: {host!r} is not an address or host name others can dial", USAGE)
    return host, port


def _relay_options(raw: dict[str, Any]) -> RelayOptions:
    from p2pbackup.net.relay_book import RelayLimits
    from p2pbackup.peer.relaying import RelayOptions

    limits = RelayLimits(
        max_peers=raw["relay_max_peers"],
        rate=_rate(raw["relay_rate"], "--relay-rate"),
        total_rate=_rate(raw["relay_total_rate"], "--relay-total-rate"),
        sessions_per_peer=raw["relay_sessions_per_peer"],
    )
    through = tuple(parse_address(text) for text in raw["use_relay"])
    return RelayOptions(raw["relay"], limits, through, raw["relay_only"], raw["hole_punch"])


def _rate(text: str, option: str) -> float:
    """Bytes a second from 'SIZE/s' (or a bare SIZE); a bad one ends the command."""
    try:
        rate = parse_size(text.removesuffix("/s"))
    except ValueError as exc:
        fail(f"{option}: {exc}", USAGE)
    if rate <= 0:
        fail(f"{option}: a rate must be more than 0 bytes a second", USAGE)
    return float(rate)


@user_errors
def status(
    as_json: bool = JSON_OPTION,
    wait: str = typer.Option(
        None,
        "--wait",
        metavar="DURATION",
        help="Wait up to DURATION for the peer to start and join its mesh (e.g. 30s).",
    ),
) -> None:
    """Show the running peer's state: who it is, its peers, the space it offers."""
    if wait is None:
        result = call_peer("status", timeout=STATUS_SECONDS)
    else:
        result = _wait_joined(parse_duration(wait))
    emit(result, as_json, render.status_text)


def _wait_joined(deadline: float) -> dict[str, Any]:
    """The peer's status once it answers and has joined; an error after `deadline` s."""
    end = time.monotonic() + deadline
    while True:
        try:
            left = min(STATUS_SECONDS, end - time.monotonic())
            result = call_peer("status", timeout=max(1.0, left))
        except NoPeerRunning:
            result = {"joined": False}
        if result["joined"]:
            return result
        if time.monotonic() >= end:
            what = "has not joined its mesh" if "node_id" in result else "is not running"
            span = render.duration(deadline)
            raise P2PBackupError(f"the peer of {STATE.home.path} {what} after {span}")
        time.sleep(0.2)


@user_errors
def peers(as_json: bool = JSON_OPTION) -> None:
    """List the peers the running peer knows, with when each last showed life."""
    show("peers", as_json, render.peers_text)


@user_errors
def record_put(
    name: str,
    value: str,
    kind: str = typer.Option("value", metavar="KIND", help="value or set"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a record signed by this peer through the running peer."""
    result = call_peer("record_put", RecordPutRequest(name.encode(), value.encode(), kind))
    emit(result, as_json, render.record_put_text)


@user_errors
def record_get(key: str, as_json: bool = JSON_OPTION) -> None:
    """Quorum-read the record under KEY (hex) through the running peer."""
    result = call_peer("record_get", RecordGetRequest(bytes.fromhex(key)))
    if result.get("found"):
        result["values"] = [v.decode(errors="replace") for v in result["values"]]
        result["name"] = result["name"].decode(errors="replace")
    emit(result, as_json, render.record_get_text)
