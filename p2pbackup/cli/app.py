"""`p2pbackup`: the typer application.

Every command that needs the peer talks to the one running for `--home`
through its control socket. User mistakes and expected failures print one
line on stderr and exit non-zero; `--json` prints one object on stdout.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import trio
import typer

from p2pbackup.base import defaults
from p2pbackup.cli.durations import parse_duration
from p2pbackup.cli.progress import live_progress
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import parse_address
from p2pbackup.peer import control
from p2pbackup.peer.heap import keep_freed_pages
from p2pbackup.peer.home import Home
from p2pbackup.store.capacity import format_size, parse_size

app = typer.Typer(
    name="p2pbackup",
    help="A peer-to-peer backup mesh with no central server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
debug_app = typer.Typer(help="Low-level tools for looking inside the mesh.", no_args_is_help=True)
app.add_typer(debug_app, name="debug", hidden=True)

P = ParamSpec("P")
R = TypeVar("R")


class State:
    home: Home


STATE = State()


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the project's errors and bad values into one line and an exit status."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except P2PBackupError as exc:
            fail(str(exc))
        except ValueError as exc:
            fail(str(exc), 2)
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper


def emit(result: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str]) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=_jsonable))
    else:
        typer.echo(human(result))


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON: {type(value).__name__}")


def call_peer(
    op: str,
    args: dict[str, Any] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    return trio.run(control.call, STATE.home.control_socket, op, args, on_progress)


PARTIAL = 3  # exit status of a backup or restore that left some files out


@app.callback()
def main_options(
    home: str = typer.Option(
        None, "--home", help="Peer home directory (default: $P2PBACKUP_HOME or the data dir)."
    ),
) -> None:
    STATE.home = Home.resolve(home)


@app.command()
@user_errors
def init(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    recover: bool = typer.Option(
        False, "--recover", help="Take an existing recovery phrase from standard input."
    ),
    passphrase_file: Path = typer.Option(
        None, "--passphrase-file", help="Derive the owner keys from the passphrase in this file."
    ),
    shares_needed: int = typer.Option(
        defaults.SHARES_NEEDED, "--shares-needed", "-k", help="Shares that rebuild a pack."
    ),
    shares_total: int = typer.Option(
        defaults.SHARES_TOTAL, "--shares-total", "-n", help="Shares made of each pack."
    ),
    happy: int = typer.Option(
        defaults.HAPPY, "--happy", help="Fewest distinct peers a backup accepts."
    ),
    peer_only: bool = typer.Option(
        False, "--peer-only", help="Only store others' shares; no owner keys on this home."
    ),
) -> None:
    """Create this home: a peer identity and the owner keys behind one recovery phrase."""
    from p2pbackup.crypto.keys import (
        OwnerKeys,
        new_recovery_phrase,
        passphrase_salt,
        validate_phrase,
    )

    home = STATE.home
    if home.is_initialised():
        fail(f"{home.path} is already initialised")
    if not 1 <= shares_needed <= shares_total <= 255:
        fail("need 1 <= --shares-needed <= --shares-total <= 255", 2)
    if not shares_needed <= happy <= shares_total:
        fail("--happy must lie between --shares-needed and --shares-total", 2)
    phrase: str | None = None
    keys: OwnerKeys | None = None
    if peer_only:
        pass
    elif passphrase_file is not None:
        try:
            secret = passphrase_file.read_text().strip("\r\n")
        except OSError as exc:
            fail(f"cannot read {passphrase_file}: {exc.strerror or exc}")
        keys = OwnerKeys.from_passphrase(secret, passphrase_salt("p2pbackup owner"))
    elif recover:
        keys = OwnerKeys.from_phrase(validate_phrase(sys.stdin.read()))
    else:
        phrase = new_recovery_phrase()
        keys = OwnerKeys.from_phrase(phrase)
    identity = home.create()
    result: dict[str, Any] = {"node_id": identity.node_id.hex(), "home": str(home.path)}
    if keys is not None:
        settings = {"k": shares_needed, "n": shares_total, "happy": happy}
        home.write_owner(keys.master, settings)
        result["owner"] = keys.identity.public_key.hex()
        result.update(settings)
    if phrase is not None:
        result["recovery_phrase"] = phrase
    emit(result, as_json, _init_text)


def _init_text(result: dict[str, Any]) -> str:
    lines = [f"initialised {result['home']}", f"node id {result['node_id']}"]
    if "recovery_phrase" in result:
        lines += [
            "",
            "Recovery phrase (shown once; write it down and keep it safe):",
            "",
            f"    {result['recovery_phrase']}",
            "",
            "With these words alone, `init --recover` on a new machine gets every backup back.",
        ]
    return "\n".join(lines)


@app.command()
@user_errors
def serve(
    listen: str = typer.Option("127.0.0.1:7400", help="HOST:PORT to accept peers on."),
    bootstrap: list[str] = typer.Option([], help="HOST:PORT of a peer to join through."),
    rpc_timeout: str = typer.Option("5s", help="Deadline of one remote call."),
    refresh_interval: str = typer.Option("1h", help="How often idle buckets are refreshed."),
    republish_interval: str = typer.Option("1h", help="How often held records are republished."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    capacity: str = typer.Option("20GiB", help="Disk space offered to other owners' shares."),
    audit_interval: str = typer.Option(
        "1h", help="How often held shares are audited and repaired."
    ),
    repair_threshold: int = typer.Option(
        7, help="Rebuild lost shares at once when fewer than this many are live."
    ),
    lease: str = typer.Option("90d", help="How long peers keep this owner's shares unrenewed."),
    renew_interval: str = typer.Option("7d", help="How often this owner renews its leases."),
) -> None:
    """Run this home's peer in the foreground until SIGINT or SIGTERM."""
    from p2pbackup.dht.config import DhtConfig
    from p2pbackup.maintenance.config import MaintenanceConfig
    from p2pbackup.peer.service import PeerService, ServeOptions

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    options = ServeOptions(
        listen=parse_address(listen, any_port=True),
        bootstrap=tuple(parse_address(b) for b in bootstrap),
        dht=DhtConfig(
            rpc_timeout=parse_duration(rpc_timeout),
            refresh_interval=parse_duration(refresh_interval),
            republish_interval=parse_duration(republish_interval),
        ),
        capacity=parse_size(capacity),
        maintenance=MaintenanceConfig(
            audit_interval=parse_duration(audit_interval), repair_threshold=repair_threshold
        ),
        lease_seconds=max(1, int(parse_duration(lease))),
        renew_interval=parse_duration(renew_interval),
    )
    home = STATE.home

    async def run() -> None:
        await PeerService(home, options).run()

    keep_freed_pages()  # every share is a new MiB-sized buffer: decision 0013
    try:
        trio.run(run)
    except OSError as exc:
        fail(f"cannot serve on {listen}: {exc.strerror or exc}")


@app.command()
@user_errors
def status(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Show the running peer's state."""
    result = call_peer("status")
    emit(
        result,
        as_json,
        lambda r: "\n".join(f"{key:20} {value}" for key, value in r.items()),
    )


@app.command()
@user_errors
def peers(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """List the peers in the running peer's routing table."""
    result = call_peer("peers")
    emit(
        result,
        as_json,
        lambda r: (
            "\n".join(f"{p['node_id']}  {p['address']}" for p in r["peers"]) or "no known peers"
        ),
    )


@app.command()
@user_errors
def backup(
    paths: list[Path] = typer.Argument(..., help="Files and folders to back up."),
    tag: list[str] = typer.Option([], "--tag", help="Label the snapshot (repeatable)."),
    exclude: list[str] = typer.Option(
        [], "--exclude", help="Skip names or paths matching this pattern (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Back up PATHS into a new snapshot; unchanged files are not read again."""
    absolute = [os.path.abspath(p) for p in paths]
    for path in absolute:
        if not os.path.lexists(path):
            fail(f"{path} does not exist")
    args = {"paths": absolute, "tags": tag, "excludes": exclude}
    with live_progress("backup", "backup") as update:
        result = call_peer("backup", args, update)
    emit(result, as_json, _backup_text)
    if result.get("errors"):
        for error in result["errors"][:20]:
            typer.echo(f"warning: {error['path']}: {error['reason']}", err=True)
        fail(
            f"{len(result['errors'])} paths could not be read; the snapshot leaves them out",
            PARTIAL,
        )


def _backup_text(r: dict[str, Any]) -> str:
    return (
        f"snapshot {r['short_id']} saved: {r['files']} files, {format_size(r['bytes'])}; "
        f"{r['files_unchanged']} unchanged, {r['chunks_new']} new chunks "
        f"({r['chunks_reused']} reused), {format_size(r['bytes_sent'])} sent to peers "
        f"in {r['seconds']:.1f}s"
    )


@app.command()
@user_errors
def snapshots(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """List this owner's snapshots, oldest first."""
    result = call_peer("snapshots")
    emit(result, as_json, _snapshots_text)


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def _snapshots_text(r: dict[str, Any]) -> str:
    if not r["snapshots"]:
        return "no snapshots yet"
    lines = [f"{'ID':10}{'TIME':21}{'HOST':16}{'FILES':>8} {'SIZE':>10}  PATHS"]
    for s in r["snapshots"]:
        tags = f"  [{', '.join(s['tags'])}]" if s["tags"] else ""
        lines.append(
            f"{s['short_id']:10}{_when(s['time']):21}{s['host'][:15]:16}{s['files']:>8} "
            f"{format_size(s['bytes']):>10}  {', '.join(s['paths'])}{tags}"
        )
    return "\n".join(lines)


@app.command("ls")
@user_errors
def ls_command(
    snapshot: str = typer.Argument(..., help="Snapshot id (or a prefix of it), or `latest`."),
    path: str = typer.Argument("", help="Only this path inside the snapshot."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """List the files of a snapshot."""
    result = call_peer("ls", {"snapshot": snapshot, "path": path})
    emit(result, as_json, _ls_text)


def _ls_text(r: dict[str, Any]) -> str:
    lines = []
    for e in r["entries"]:
        kind = {"dir": "d", "symlink": "l"}.get(e["type"], "-")
        target = f" -> {e['target']}" if "target" in e else ""
        lines.append(
            f"{kind}{e['mode'] & 0o7777:04o} {e['size']:>12} {_when(e['mtime'])}  "
            f"{e['path']}{target}"
        )
    return "\n".join(lines) or "nothing matches"


@app.command()
@user_errors
def restore(
    snapshot: str = typer.Argument(..., help="Snapshot id (or a prefix of it), or `latest`."),
    target: Path = typer.Option(..., "--target", help="A new or empty folder to restore into."),
    include: list[str] = typer.Option(
        [], "--include", help="Only paths matching this pattern (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Restore a snapshot (or the parts matching --include) into TARGET."""
    args = {"snapshot": snapshot, "target": os.path.abspath(target), "includes": include}
    with live_progress("restore", "restore") as update:
        result = call_peer("restore", args, update)
    emit(result, as_json, _restore_text)
    if result["files_failed"]:
        for failure in result["failures"][:20]:
            typer.echo(f"not restored: {failure['path']}: {failure['reason']}", err=True)
        fail(f"{result['files_failed']} files could not be rebuilt; the rest are restored", PARTIAL)


def _restore_text(r: dict[str, Any]) -> str:
    return (
        f"restored {r['files_restored']} files, {format_size(r['bytes'])} "
        f"in {r['seconds']:.1f}s" + (f"; {r['files_failed']} failed" if r["files_failed"] else "")
    )


@app.command()
@user_errors
def check(
    read_data: bool = typer.Option(
        False, "--read-data", help="Also download every pack and verify every chunk."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Audit the shares of every pack the snapshots use (and with --read-data, the data)."""
    with live_progress("check", "packs") as update:
        result = call_peer("check", {"read_data": read_data}, update)
    emit(result, as_json, _check_text)
    if result["unrecoverable"] or result.get("chunk_errors") or result.get("index_errors"):
        fail(f"{_count(result['unrecoverable'], 'pack')} cannot be rebuilt", PARTIAL)


def _check_text(r: dict[str, Any]) -> str:
    text = (
        f"{_count(r['packs'], 'pack')} in {_count(r['snapshots'], 'snapshot')}: "
        f"{r['healthy']} with every share, "
        f"{r['degraded']} degraded, {r['unrecoverable']} unrecoverable; "
        f"fewest live shares {r['min_live_shares']}"
    )
    if "chunks_read" in r:
        text += f"\n{r['chunks_read']} chunks read and verified, {len(r['chunk_errors'])} errors"
    for error in r.get("index_errors", [])[:5]:
        text += f"\nunreadable index: {error}"
    return text


_REPACK_OPTION = typer.Option(
    50,
    "--repack-below",
    min=0,
    max=100,
    help="Repack packs whose used data fills less than this percent of them (0: never).",
)


@app.command()
@user_errors
def forget(
    snapshots: list[str] = typer.Argument(None, help="Snapshot ids (or prefixes) to forget."),
    keep_last: int = typer.Option(0, "--keep-last", min=0, help="Keep the N newest."),
    keep_hourly: int = typer.Option(0, "--keep-hourly", min=0, help="Keep N hourly."),
    keep_daily: int = typer.Option(0, "--keep-daily", min=0, help="Keep N daily."),
    keep_weekly: int = typer.Option(0, "--keep-weekly", min=0, help="Keep N weekly."),
    keep_monthly: int = typer.Option(0, "--keep-monthly", min=0, help="Keep N monthly."),
    keep_tag: list[str] = typer.Option(None, "--keep-tag", help="Keep every snapshot with T."),
    prune: bool = typer.Option(False, "--prune", help="Then release packs no snapshot uses."),
    repack_below: int = _REPACK_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would go; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Forget snapshots: those named, or those the --keep-* rules do not keep (as restic)."""
    args = {
        "snapshots": snapshots or [],
        "keep_last": keep_last,
        "keep_hourly": keep_hourly,
        "keep_daily": keep_daily,
        "keep_weekly": keep_weekly,
        "keep_monthly": keep_monthly,
        "keep_tags": keep_tag or [],
        "prune": prune,
        "repack_below": repack_below / 100,
        "dry_run": dry_run,
    }
    with live_progress("forget", "packs") as update:
        result = call_peer("forget", args, update)
    emit(result, as_json, _forget_text)


def _forget_text(r: dict[str, Any]) -> str:
    verb = "would forget" if r["dry_run"] else "forgot"
    lines = [f"keep {_count(len(r['keep']), 'snapshot')}, {verb} {len(r['forget'])}"]
    for s in r["keep"]:
        lines.append(f"  keep   {s['short_id']}  {_when(s['time'])}  {', '.join(s['reasons'])}")
    for s in r["forget"]:
        lines.append(f"  forget {s['short_id']}  {_when(s['time'])}")
    if "prune" in r:
        lines.append(_prune_text(r["prune"]))
    return "\n".join(lines)


@app.command("prune")
@user_errors
def prune_command(
    repack_below: int = _REPACK_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would go; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Release the packs no kept snapshot uses and repack the mostly unused ones; their
    holders free the space."""
    args = {"dry_run": dry_run, "repack_below": repack_below / 100}
    with live_progress("prune", "packs") as update:
        result = call_peer("prune", args, update)
    emit(result, as_json, _prune_text)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _prune_text(r: dict[str, Any]) -> str:
    would = r["dry_run"]
    kept = _count(r["packs_kept"], "pack")
    lines = [f"{kept} kept whole for {_count(r['snapshots'], 'snapshot')}"]
    if r["packs_repacked"]:
        verb = "would repack" if would else "repacked"
        moved = format_size(r["bytes_repacked"])
        into = "" if would else f" into {_count(r['packs_written'], 'new pack')}"
        repacked = _count(r["packs_repacked"], "mostly unused pack")
        lines.append(f"{verb} {repacked} ({moved} in use){into}")
    if would:
        lines.append(f"would release {_count(r['packs_released'], 'pack')}")
    else:
        lines.append(
            f"released {_count(r['packs_released'], 'pack')} "
            f"({_count(r['shares_dropped'], 'share')} dropped at "
            "once; the rest go when their leases run out)"
        )
    return "\n".join(lines)


@app.command()
@user_errors
def repair(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Rebuild now every share of this owner's packs that is not live (needs k per pack)."""
    with live_progress("repair", "packs") as update:
        result = call_peer("repair", {}, update)
    emit(
        result,
        as_json,
        lambda r: _check_text(r) + f"\nrebuilt and placed {r['shares_rebuilt']} shares",
    )
    if result["unrecoverable"]:
        fail(f"{_count(result['unrecoverable'], 'pack')} cannot be rebuilt", PARTIAL)


@app.command()
@user_errors
def simulate(
    scenario: str = typer.Argument(None, help="Scenario name; see --list."),
    peers: int = typer.Option(None, "--peers", min=2, help="Number of peers."),
    days: float = typer.Option(None, "--days", min=0.01, help="Simulated days."),
    packs: int = typer.Option(None, "--packs", min=1, help="Packs the owner backs up."),
    lookups: int = typer.Option(None, "--lookups", min=1, help="Lookups to run (lookups)."),
    seed: int = typer.Option(1, "--seed", help="Seed: the same seed replays the same run."),
    out: Path = typer.Option(
        None, "--out", help="Report folder [default: sim-reports/SCENARIO-seedS]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    list_scenarios: bool = typer.Option(False, "--list", help="List the scenarios."),
) -> None:
    """Run a scenario on the simulated network and virtual clock; write its report."""
    from p2pbackup.simulations.catalog import SCENARIOS, default_out, flat, run_named
    from p2pbackup.simulations.report import write_report
    from p2pbackup.simulations.world import stderr_progress

    if list_scenarios or scenario is None:
        for name, entry in SCENARIOS.items():
            typer.echo(f"{name:20} {entry.summary}")
        return
    # Simulated peers log as real ones do; a hostile run's rejected shares are
    # findings for the report, not warnings for the terminal.
    logging.getLogger("p2pbackup").setLevel(logging.ERROR)
    options = {"peers": peers, "lookups": lookups, "packs": packs, "days": days}
    chosen = {k: v for k, v in options.items() if v is not None}
    if scenario not in SCENARIOS:
        raise P2PBackupError(
            f"unknown scenario {scenario!r}; `p2pbackup simulate --list` names them"
        )
    folder = out if out is not None else default_out(scenario, seed)
    try:  # before the run, not after minutes of it
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise P2PBackupError(f"cannot write the report to {folder}: {exc.strerror}") from None
    result = run_named(scenario, seed, chosen, None if as_json else stderr_progress)
    write_report(result, folder)
    summary = {**flat(result), "report": str(folder / "report.md")}
    emit(summary, as_json, lambda r: "\n".join(f"{key:34} {value}" for key, value in r.items()))


@debug_app.command("record-put")
@user_errors
def record_put(
    name: str,
    value: str,
    kind: str = typer.Option("value", help="value or set"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write a record signed by this peer through the running peer."""
    result = call_peer("record_put", {"name": name.encode(), "value": value.encode(), "kind": kind})
    emit(result, as_json, lambda r: f"stored {r['key']} seq {r['seq']} on {r['acks']} peers")


@debug_app.command("record-get")
@user_errors
def record_get(key: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Quorum-read the record under KEY (hex) through the running peer."""
    result = call_peer("record_get", {"key": bytes.fromhex(key)})
    if result.get("found"):
        result["values"] = [v.decode(errors="replace") for v in result["values"]]
        result["name"] = result["name"].decode(errors="replace")
    emit(result, as_json, lambda r: json.dumps(r))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
