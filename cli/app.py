"""`p2pbackup`: the typer application.

Every command that needs the peer talks to the one running for `--home`
through its control socket. User mistakes and expected failures print one
line on stderr and exit non-zero; `--json` prints one object on stdout.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import trio
import typer

from cli.durations import parse_duration
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import parse_address
from p2pbackup.peer import control
from p2pbackup.peer.home import Home

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


def call_peer(op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return trio.run(control.call, STATE.home.control_socket, op, args)


@app.callback()
def main_options(
    home: str = typer.Option(
        None, "--home", help="Peer home directory (default: $P2PBACKUP_HOME or the data dir)."
    ),
) -> None:
    STATE.home = Home.resolve(home)


@app.command()
@user_errors
def init(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Create this peer's identity in its home directory."""
    identity = STATE.home.create()
    result = {"node_id": identity.node_id.hex(), "home": str(STATE.home.path)}
    emit(result, as_json, lambda r: f"initialised {r['home']}\nnode id {r['node_id']}")


@app.command()
@user_errors
def serve(
    listen: str = typer.Option("127.0.0.1:7400", help="HOST:PORT to accept peers on."),
    bootstrap: list[str] = typer.Option([], help="HOST:PORT of a peer to join through."),
    rpc_timeout: str = typer.Option("5s", help="Deadline of one remote call."),
    refresh_interval: str = typer.Option("1h", help="How often idle buckets are refreshed."),
    republish_interval: str = typer.Option("1h", help="How often held records are republished."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run this home's peer in the foreground until SIGINT or SIGTERM."""
    from p2pbackup.dht.config import DhtConfig
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
    )
    home = STATE.home

    async def run() -> None:
        await PeerService(home, options).run()

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
def simulate(
    scenario: str = typer.Argument(None, help="Scenario name; see --list."),
    peers: int = typer.Option(None, "--peers", min=2, help="Number of peers."),
    lookups: int = typer.Option(None, "--lookups", min=1, help="Lookups to run (lookups)."),
    seed: int = typer.Option(1, "--seed", help="Seed: the same seed replays the same run."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    list_scenarios: bool = typer.Option(False, "--list", help="List the scenarios."),
) -> None:
    """Run a scenario on the simulated network and virtual clock."""
    from simulations.catalog import SCENARIOS, run_named

    if list_scenarios or scenario is None:
        for name, entry in SCENARIOS.items():
            typer.echo(f"{name:20} {entry.summary}")
        return
    options = {"peers": peers, "lookups": lookups}
    result = run_named(scenario, seed, {k: v for k, v in options.items() if v is not None})
    emit(result, as_json, lambda r: "\n".join(f"{key:28} {value}" for key, value in r.items()))


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
