"""`p2pbackup config`: the owner's settings, changed at any time without a new phrase.

The settings live in the home's owner settings file, written atomically; the
running peer reads them again at each backup and repair, so a change needs no
restart. Packs already placed keep their k/n until `repair --reencode`.
"""

from __future__ import annotations

from typing import Any

import typer

from p2pbackup.base import defaults
from p2pbackup.cli.common import JSON_OPTION, STATE, Result, emit, fail, user_errors
from p2pbackup.shares.redundancy import default_happy, parse_redundancy, redundancy_of

config_app = typer.Typer(
    help="Show or change this owner's settings (redundancy of new packs).",
    no_args_is_help=True,
)

_HAPPY_HELP = (
    "Fewest distinct peers a pack is accepted on. Default for K-of-N: "
    "K + half of N-K, rounded up, at most N (7 for 3-of-10, 3 for 2-of-4)."
)


@config_app.command("set")
@user_errors
def set_command(
    name: str = typer.Argument(..., help="The setting: `redundancy`."),
    value: str = typer.Argument(..., help="For redundancy: K-of-N, e.g. 2-of-4."),
    happy: int | None = typer.Option(None, "--happy", min=1, max=255, help=_HAPPY_HELP),
    as_json: bool = JSON_OPTION,
) -> None:
    """Change a setting. `config set redundancy 2-of-4`: any 2 of 4 shares rebuild a pack;
    new packs use it at once (no restart), old packs keep theirs until `repair --reencode`.
    A mesh needs at least HAPPY peers besides this one."""
    if name != "redundancy":
        fail(f"unknown setting {name!r}; the one that can be set is `redundancy`", 2)
    k, n, chosen = parse_redundancy(value, happy)
    _settings_home()
    settings = STATE.home.update_owner_settings({"k": k, "n": n, "happy": chosen})
    emit(_shown(settings), as_json, _text)


@config_app.command("show")
@user_errors
def show_command(as_json: bool = JSON_OPTION) -> None:
    """Show the settings new packs are made with."""
    _settings_home()
    emit(_shown(STATE.home.owner_settings()), as_json, _text)


def _settings_home() -> None:
    home = STATE.home
    if not home.is_initialised():
        fail(f"{home.path} is not initialised; run `p2pbackup --home {home.path} init` first")
    if not home.has_owner():
        fail(f"{home.path} holds no owner key (made with `init --peer-only`); it has no settings")


def _shown(settings: dict[str, Any]) -> Result:
    r = redundancy_of(settings, defaults.LEASE_SECONDS)
    return {
        "redundancy": r.label,
        "k": r.k,
        "n": r.n,
        "happy": r.happy,
        "default_happy": default_happy(r.k, r.n),
        "peers_needed": r.happy,
    }


def _text(r: Result) -> str:
    return (
        f"redundancy {r['redundancy']}, happy {r['happy']}: any {r['k']} of {r['n']} shares "
        f"rebuild a pack; a backup needs {r['peers_needed']} peers besides this one"
    )
