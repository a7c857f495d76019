"""The owner's commands: make a home, then back up, browse, restore, check and forget.

Each builds its typed request, has the running peer carry it out, and prints
the answer (`render` for people, `--json` for scripts). A backup or restore
that left something out, or a check that found a pack beyond repair, exits
with `PARTIAL` after printing what it did.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from p2pbackup.base import defaults
from p2pbackup.cli import render
from p2pbackup.cli.common import (
    JSON_OPTION,
    PARTIAL,
    STATE,
    Result,
    call_peer,
    call_showing_progress,
    emit,
    fail,
    user_errors,
)
from p2pbackup.peer import requests

if TYPE_CHECKING:
    from p2pbackup.crypto.keys import OwnerKeys

_REPACK_OPTION = typer.Option(
    50,
    "--repack-below",
    min=0,
    max=100,
    help="Repack packs whose used data fills less than this percent of them (0: never).",
)
_DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Show what would go; change nothing.")


@user_errors
def init(
    as_json: bool = JSON_OPTION,
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
    home = STATE.home
    if home.is_initialised():
        fail(f"{home.path} is already initialised")
    if not 1 <= shares_needed <= shares_total <= 255:
        fail("need 1 <= --shares-needed <= --shares-total <= 255", 2)
    if not shares_needed <= happy <= shares_total:
        fail("--happy must lie between --shares-needed and --shares-total", 2)
    keys, phrase = (None, None) if peer_only else _owner_keys(passphrase_file, recover)
    identity = home.create()
    result: dict[str, Any] = {"node_id": identity.node_id.hex(), "home": str(home.path)}
    if keys is not None:
        settings = {"k": shares_needed, "n": shares_total, "happy": happy}
        home.write_owner(keys.master, settings)
        result["owner"] = keys.identity.public_key.hex()
        result.update(settings)
    if phrase is not None:
        result["recovery_phrase"] = phrase
    emit(result, as_json, render.init_text)


def _owner_keys(passphrase_file: Path | None, recover: bool) -> tuple[OwnerKeys, str | None]:
    """The owner's keys, and the new recovery phrase they come from (None if not new)."""
    from p2pbackup.crypto.keys import (
        OwnerKeys,
        new_recovery_phrase,
        validate_phrase,
    )

    if passphrase_file is not None:
        try:
            secret = passphrase_file.read_text().strip("\r\n")
        except OSError as exc:
            fail(f"cannot read {passphrase_file}: {exc.strerror or exc}")
        return OwnerKeys.from_owner_passphrase(secret), None
    if recover:
        return OwnerKeys.from_phrase(validate_phrase(sys.stdin.read())), None
    phrase = new_recovery_phrase()
    return OwnerKeys.from_phrase(phrase), phrase


@user_errors
def backup(
    paths: list[Path] = typer.Argument(
        ...,
        help="Files and folders to back up. A symlink to a folder named here is saved "
        "as the folder; symlinks inside are kept as links.",
    ),
    tag: list[str] = typer.Option([], "--tag", help="Label the snapshot (repeatable)."),
    exclude: list[str] = typer.Option(
        [], "--exclude", help="Skip names or paths matching this pattern (repeatable)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Back up PATHS into a new snapshot; unchanged files are not read again."""
    absolute = [os.path.abspath(p) for p in paths]
    for path in absolute:
        if not os.path.lexists(path):
            fail(f"{path} does not exist")
    request = requests.BackupRequest(tuple(absolute), tuple(tag), tuple(exclude))
    result = call_showing_progress("backup", request, "backup")
    emit(result, as_json, render.backup_text)
    if result.get("errors"):
        for error in result["errors"][:20]:
            typer.echo(f"warning: {error['path']}: {error['reason']}", err=True)
        fail(
            f"{len(result['errors'])} paths could not be read; the snapshot leaves them out",
            PARTIAL,
        )


@user_errors
def snapshots(as_json: bool = JSON_OPTION) -> None:
    """List this owner's snapshots, oldest first."""
    emit(call_peer("snapshots"), as_json, render.snapshots_text)


@user_errors
def ls_command(
    snapshot: str = typer.Argument(..., help="Snapshot id (or a prefix of it), or `latest`."),
    path: str = typer.Argument("", help="Only this path inside the snapshot."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the files of a snapshot."""
    emit(call_peer("ls", requests.LsRequest(snapshot, path)), as_json, render.ls_text)


@user_errors
def restore(
    snapshot: str = typer.Argument(..., help="Snapshot id (or a prefix of it), or `latest`."),
    target: Path = typer.Option(..., "--target", help="A new or empty folder to restore into."),
    include: list[str] = typer.Option(
        [], "--include", help="Only paths matching this pattern (repeatable)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Restore a snapshot (or the parts matching --include) into TARGET."""
    request = requests.RestoreRequest(snapshot, os.path.abspath(target), tuple(include))
    result = call_showing_progress("restore", request, "restore")
    emit(result, as_json, render.restore_text)
    if result["files_failed"]:
        for failure in result["failures"][:20]:
            typer.echo(f"not restored: {failure['path']}: {failure['reason']}", err=True)
        fail(f"{result['files_failed']} files could not be rebuilt; the rest are restored", PARTIAL)


@user_errors
def check(
    read_data: bool = typer.Option(
        False, "--read-data", help="Also download every pack and verify every chunk."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Audit the shares of every pack the snapshots use (and with --read-data, the data)."""
    result = call_showing_progress("check", requests.CheckRequest(read_data), "packs")
    emit(result, as_json, render.check_text)
    if result["unrecoverable"] or result.get("chunk_errors") or result.get("index_errors"):
        _unrecoverable(result)


@user_errors
def repair(as_json: bool = JSON_OPTION) -> None:
    """Rebuild now every share of this owner's packs that is not live (needs k per pack)."""
    result = call_showing_progress("repair", requests.NoArgs(), "packs")
    emit(result, as_json, render.repair_text)
    if result["unrecoverable"]:
        _unrecoverable(result)


def _unrecoverable(result: Result) -> None:
    fail(f"{render.count(result['unrecoverable'], 'pack')} cannot be rebuilt", PARTIAL)


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
    dry_run: bool = _DRY_RUN_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Forget snapshots: those named, or those the --keep-* rules do not keep (as restic)."""
    request = requests.ForgetRequest(
        tuple(snapshots or ()),
        keep_last=keep_last,
        keep_hourly=keep_hourly,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        keep_tags=tuple(keep_tag or ()),
        prune=prune,
        repack_below=repack_below / 100,
        dry_run=dry_run,
    )
    emit(call_showing_progress("forget", request, "packs"), as_json, render.forget_text)


@user_errors
def prune_command(
    repack_below: int = _REPACK_OPTION,
    dry_run: bool = _DRY_RUN_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Release the packs no kept snapshot uses and repack the mostly unused ones; their
    holders free the space."""
    request = requests.PruneRequest(dry_run, repack_below / 100)
    emit(call_showing_progress("prune", request, "packs"), as_json, render.prune_text)
