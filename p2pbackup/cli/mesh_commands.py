"""The mesh's commands: `invite`, `members`, `expel`, and the mesh `init` makes or joins.

Only the founder invites and expels (decision 0037); any member lists the roll.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import typer

from p2pbackup.cli import render
from p2pbackup.cli.common import JSON_OPTION, call_peer, emit, fail, user_errors
from p2pbackup.cli.durations import parse_duration

if TYPE_CHECKING:
    from p2pbackup.crypto.identity import Identity
    from p2pbackup.crypto.keys import OwnerKeys
    from p2pbackup.mesh.saved import SavedMesh


def mesh_for_init(
    identity: Identity,
    keys: OwnerKeys | None,
    *,
    join: str | None,
    open_mesh: bool,
    recover: bool,
) -> tuple[SavedMesh, dict[str, Any]]:
    """The mesh a new home belongs to, and what `init` says of it. A join happens here,
    before the home is made: a refused one leaves nothing behind."""
    from p2pbackup.crypto.keys import member_identity
    from p2pbackup.mesh.gate import MeshState
    from p2pbackup.mesh.invites import decode_invite
    from p2pbackup.mesh.saved import SavedMesh, founded

    if open_mesh:
        if join is not None:
            fail("--open-mesh and --join exclude each other: an open mesh takes no invites", 2)
        return SavedMesh(open=True), {"mesh": "open"}
    member = member_identity(keys.master) if keys is not None else identity
    if join is not None:
        from p2pbackup.peer.invited import redeem

        invite = decode_invite(join)
        if time.time() >= invite.expires:
            fail("this invite has expired; ask the founder for a new one")
        import trio  # only here: every other command starts without it

        saved = trio.run(redeem, identity, member, invite, _hostname())
        return saved, {"mesh": invite.mesh.hex(), "joined": True, "bootstrap": saved.bootstrap}
    if recover:
        # The mesh comes from the first member this peer meets (`serve --bootstrap`).
        return SavedMesh(False, MeshState(member, identity.public_key)), {"mesh": None}
    saved = founded(member, identity.public_key, _hostname(), int(time.time()))
    return saved, {"mesh": member.public_key.hex(), "founded": True}


def _hostname() -> str:
    return (socket.gethostname() or "member")[:64]


@user_errors
def invite(
    expires: str = typer.Option("7d", "--expires", metavar="DURATION", help="Valid this long."),
    uses: int = typer.Option(1, "--uses", min=1, max=1000, help="Machines it may join."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print a one-line invite code for `init --join` (the mesh's founder only)."""
    try:
        seconds = parse_duration(expires)
    except ValueError as exc:
        fail(str(exc), 2)
    if seconds <= 0:
        fail("--expires must be above 0", 2)
    from p2pbackup.peer.mesh_control import InviteRequest

    emit(call_peer("invite", InviteRequest(seconds, uses)), as_json, _invite_text)


@user_errors
def members(as_json: bool = JSON_OPTION) -> None:
    """List the mesh's members: who, since when, by which nodes, expelled or not."""
    emit(call_peer("members"), as_json, _members_text)


@user_errors
def expel(
    target: str = typer.Argument(..., help="Node id or member id (or a unique prefix)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Expel a member: every member refuses it from now on, and its shares are repaired."""
    from p2pbackup.peer.mesh_control import ExpelRequest

    emit(call_peer("expel", ExpelRequest(target)), as_json, _expel_text)


def _invite_text(r: dict[str, Any]) -> str:
    return r["code"]


def _members_text(r: dict[str, Any]) -> str:
    lines = [f"mesh {r['mesh'][:16]}"]
    for m in r["members"]:
        flags = [
            label for label, on in (("founder", m["founder"]), ("EXPELLED", m["expelled"])) if on
        ]
        nodes = ",".join(n[:12] for n in m["nodes"]) or "-"
        since = render.when(m["since"])
        line = (
            f"{m['member'][:16]}  {m['name']:<20} since {since}  nodes {nodes}  {' '.join(flags)}"
        )
        lines.append(line.rstrip())
    return "\n".join(lines)


def _expel_text(r: dict[str, Any]) -> str:
    name = f" ({r['name']})" if r["name"] else ""
    return f"expelled {r['member'][:16]}{name}; told {r['told']} peers at once"
