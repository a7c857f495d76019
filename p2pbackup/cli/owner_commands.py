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
    USAGE,
    Result,
    call_peer,
    call_showing_progress,
    emit,
    fail,
    say,
    user_errors,
)
from p2pbackup.peer import requests
from p2pbackup.placement.plan import refusal_summary
from p2pbackup.shares.redundancy import default_happy, parse_redundancy

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
LISTED = 20  # entries left out named on stderr; `--json` has every one


@user_errors
def init(
    as_json: bool = JSON_OPTION,
    recover: bool = typer.Option(
        False, "--recover", help="Take an existing recovery phrase from standard input."
    ),
    passphrase_file: Path = typer.Option(
        None,
        "--passphrase-file",
        metavar="FILE",
        help="Derive the owner keys from the passphrase in this file.",
    ),
    shares_needed: int = typer.Option(
        defaults.SHARES_NEEDED,
        "--shares-needed",
        "-k",
        metavar="K",
        help="Shares that rebuild a pack.",
    ),
    shares_total: int = typer.Option(
        defaults.SHARES_TOTAL, "--shares-total", "-n", metavar="N", help="Shares made of each pack."
    ),
    happy: int | None = typer.Option(
        None,
        "--happy",
        help="Fewest distinct peers a backup accepts (default: K + half of N-K, rounded up: 7).",
    ),
    peer_only: bool = typer.Option(
        False, "--peer-only", help="Only store others' shares; no owner keys on this home."
    ),
    join: str = typer.Option(
        None, "--join", metavar="CODE", help="Join the mesh of this invite code (`invite`)."
    ),
    open_mesh: bool = typer.Option(
        False, "--open-mesh", help="Belong to an open mesh: anyone may join, no invites."
    ),
) -> None:
    """Create this home: a peer identity and the owner keys behind one recovery phrase.

    It founds a new private mesh, joins one with `--join CODE`, or with `--recover`
    rejoins the mesh of the first member `serve --bootstrap` meets."""
    home = STATE.home
    if home.is_initialised():
        fail(f"{home.path} is already initialised")
    if not 1 <= shares_needed <= shares_total <= 255:
        fail("need 1 <= --shares-needed <= --shares-total <= 255", 2)
    if happy is None:
        happy = default_happy(shares_needed, shares_total)
    if not shares_needed <= happy <= shares_total:
        fail("--happy must lie between --shares-needed and --shares-total", 2)
    keys, phrase = (None, None) if peer_only else _owner_keys(passphrase_file, recover)
    from p2pbackup.cli.mesh_commands import mesh_for_init
    from p2pbackup.crypto.identity import Identity

    fresh = Identity.generate()
    mesh, told = mesh_for_init(fresh, keys, join=join, open_mesh=open_mesh, recover=recover)
    identity = home.create(fresh)
    result: dict[str, Any] = {"node_id": identity.node_id.hex(), "home": str(home.path)}
    if keys is not None:
        settings = {"k": shares_needed, "n": shares_total, "happy": happy}
        home.write_owner(keys.master, settings)
        result["owner"] = keys.identity.public_key.hex()
        result.update(settings)
    home.write_mesh(mesh.to_bytes())
    result.update(told)
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
    tag: list[str] = typer.Option(
        [], "--tag", metavar="TAG", help="Label the snapshot (repeatable)."
    ),
    exclude: list[str] = typer.Option(
        [],
        "--exclude",
        metavar="PATTERN",
        help=(
            "Skip what matches (repeatable): '*.tmp' a name, 'cache/tmp' the end of a path,"
            " '/home/me/big' a whole path."
        ),
    ),
    redundancy: str | None = typer.Option(
        None,
        "--redundancy",
        metavar="K-of-N",
        help="K-of-N for this run's new packs instead of the setting (`config set`).",
    ),
    happy: int | None = typer.Option(
        None, "--happy", min=1, max=255, help="Fewest distinct peers for this run's packs."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Back up PATHS into a new snapshot; unchanged files are not read again."""
    if any(not t.strip() for t in tag):
        fail("a --tag cannot be empty", USAGE)
    if not all(t.isprintable() for t in tag):  # a non-UTF-8 byte is not printable
        fail("a --tag must be printable text, in UTF-8", USAGE)
    absolute = [os.path.abspath(p) for p in paths]
    for path in absolute:
        if not os.path.lexists(path):
            fail(f"{path} does not exist")
    if redundancy is not None:
        parse_redundancy(redundancy, happy)  # a typo fails here, before the peer is asked
    request = requests.BackupRequest(
        tuple(absolute), tuple(tag), tuple(exclude), redundancy=redundancy, happy=happy
    )
    result = call_showing_progress("backup", request, "backup")
    emit(result, as_json, render.backup_text)
    if result.get("refused"):
        refused = [(bytes.fromhex(p["peer"]), p["reason"]) for p in result["refused"]]
        say(f"warning: {refusal_summary(refused)}; their shares went to others", err=True)
    if result.get("short_packs"):
        say(f"warning: {render.short_packs_text(result['short_packs'])}", err=True)
    errors = result.get("errors") or []
    if errors:
        _list_left_out("warning", errors)
        fail(f"{len(errors)} paths could not be read; the snapshot leaves them out", PARTIAL)


def _list_left_out(label: str, problems: list[Result]) -> None:
    """Name on stderr each entry a backup or restore left out, with why (the first
    `LISTED`; `--json` has them all)."""
    for problem in problems[:LISTED]:
        say(f"{label}: {render.shown(problem['path'])}: {problem['reason']}", err=True)
    if len(problems) > LISTED:
        say(f"{label}: ... and {len(problems) - LISTED} more (--json lists all)", err=True)


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
    result = call_peer("ls", requests.LsRequest(snapshot, path))
    if path.strip("/") and not result["entries"]:
        fail(f"no path {path!r} in snapshot {result['snapshot'][:8]}")
    emit(result, as_json, render.ls_text)


@user_errors
def restore(
    snapshot: str = typer.Argument(..., help="Snapshot id (or a prefix of it), or `latest`."),
    target: Path = typer.Option(
        ..., "--target", metavar="DIR", help="A new or empty folder to restore into."
    ),
    include: list[str] = typer.Option(
        [], "--include", metavar="PATTERN", help="Only paths matching this pattern (repeatable)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Restore a snapshot (or the parts matching --include) into TARGET."""
    if str(target).startswith("--"):
        # `--target --json`: the shell hands the option over as the folder's name.
        fail(
            f"--target needs a folder, not {target} (for a folder so named, give its full path)",
            USAGE,
        )
    folder = os.path.abspath(target)
    if os.path.exists(folder) and not os.path.isdir(folder):
        fail(f"--target {folder} is a file, not a folder")
    request = requests.RestoreRequest(snapshot, folder, tuple(include))
    result = call_showing_progress("restore", request, "restore")
    failures = result["failures"]
    nothing = not (result["files_restored"] or result["dirs"] or result["symlinks"])
    if as_json or not (failures and nothing):
        emit(result, as_json, render.restore_text)
    if failures:
        _list_left_out("not restored", failures)
        if nothing:
            fail(f"nothing was restored into {folder}")
        lost = result["files_failed"]
        fail(
            f"{len(failures)} {'entry' if len(failures) == 1 else 'entries'} not restored as saved"
            + (f" ({lost} {'file' if lost == 1 else 'files'})" if lost else "")
            + "; the rest are restored",
            PARTIAL,
        )


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
def repair(
    reencode: bool = typer.Option(
        False,
        "--reencode",
        help="Also encode again every pack whose K-of-N differ from `config show` "
        "(after `config set redundancy`); pack ids and snapshots stay valid.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Rebuild now every share of this owner's packs that is not live (needs k per pack)."""
    result = call_showing_progress("repair", requests.RepairRequest(reencode), "packs")
    emit(result, as_json, _repair_text)
    errors = result.get("reencode_errors") or []
    for error in errors[:20]:
        say(f"not re-encoded: {error}", err=True)
    if result["unrecoverable"]:
        _unrecoverable(result)
    if errors:
        fail(f"{render.count(len(errors), 'pack')} could not be re-encoded", PARTIAL)
    if result.get("still_short"):
        short = f"{render.count(result['still_short'], 'pack')} still below n shares"
        hung = result.get("hung_peers") or []
        if hung:  # the peers that would have taken them may only be away
            they = "it is" if len(hung) == 1 else "they are"
            fail(
                f"{short}: {render.count(len(hung), 'peer')} answered nothing and got none of "
                f"the rebuilt shares; run `repair` again once {they} back, or add peers",
                PARTIAL,
            )
        fail(
            f"{short}: too few peers took the rebuilt ones; add peers or choose a smaller N "
            "(`config set redundancy`, then `repair --reencode`)",
            PARTIAL,
        )


def _repair_text(r: Result) -> str:
    text = render.repair_text(r)
    if "packs_reencoded" in r:
        text += f"\nre-encoded {render.count(r['packs_reencoded'], 'pack')}"
    return text


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
    keep_tag: list[str] = typer.Option(
        None, "--keep-tag", metavar="TAG", help="Keep every snapshot with TAG."
    ),
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
    """Release the packs no kept snapshot uses, repack the mostly unused ones."""
    request = requests.PruneRequest(dry_run, repack_below / 100)
    emit(call_showing_progress("prune", request, "packs"), as_json, render.prune_text)
