"""What every command shares: the typer application, `--home`, errors, output, the peer.

Every command that needs the peer talks to the one running for `--home`
through its control socket. User mistakes and expected failures print one
line on stderr and exit non-zero; `--json` prints one object on stdout.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, Protocol, TypeVar

import typer

from p2pbackup.base.full_disk import disk_full, full_disk_line
from p2pbackup.cli import render
from p2pbackup.cli.progress import live_progress
from p2pbackup.cli.readable_help import ReadableGroup
from p2pbackup.errors import P2PBackupError, os_error_line, sole_error
from p2pbackup.peer import control_client
from p2pbackup.peer.home import Home
from p2pbackup.peer.requests import NoArgs

app = typer.Typer(
    name="p2pbackup",
    help="A peer-to-peer backup mesh with no central server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=ReadableGroup,
)
debug_app = typer.Typer(
    help="Low-level tools for looking inside the mesh.", no_args_is_help=True, cls=ReadableGroup
)
app.add_typer(debug_app, name="debug", hidden=True)

P = ParamSpec("P")
R = TypeVar("R")
Result = dict[str, Any]
Render = Callable[[Result], str]
JSON_FLAG = "--json"
JSON_OPTION = typer.Option(False, JSON_FLAG, help="Print one JSON object.")
# Exit statuses (decision 0033): 0 everything asked was done; 1 an error, so nothing or
# not everything was done; 2 the command line itself is wrong; 3 partial: done, but
# some entries were left out, each listed with its reason; 130 interrupted.
ERROR = 1
USAGE = 2
PARTIAL = 3
INTERRUPTED = 130
NO_ARGS = NoArgs()


class Request(Protocol):
    def to_args(self) -> dict[str, Any]: ...


class State:
    home: Home
    # With `--json`, an error that ends the command before its answer is printed is an
    # object on standard output too: a script reads one JSON object either way.
    as_json = False
    answered = False


STATE = State()


@app.callback()
def main_options(
    home: str = typer.Option(
        None,
        "--home",
        metavar="DIR",
        help="Peer home directory (default: $P2PBACKUP_HOME or the data dir).",
    ),
) -> None:
    STATE.home = Home.resolve(home)


def fail(message: str, code: int = ERROR) -> NoReturn:
    say(f"error: {message}", err=True)
    if STATE.as_json and not STATE.answered:
        typer.echo(json.dumps({"error": message, "exit": code}))
    raise typer.Exit(code)


def say(text: str, *, err: bool = False) -> None:
    """One message on the terminal, whatever file names it holds."""
    typer.echo(render.printable(text), err=err)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the project's errors, the system's errors about the user's paths and bad
    values into one line and an exit status, whatever exception group trio wrapped
    them in; anything else is a bug and keeps its traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        STATE.as_json, STATE.answered = bool(kwargs.get("as_json")), False
        try:
            return func(*args, **kwargs)
        except (Exception, KeyboardInterrupt, BaseExceptionGroup) as caught:
            explain(caught)
            raise

    return wrapper


def explain(caught: BaseException) -> None:
    """End the command with `caught`'s one line if it is a user-facing error; return if
    it is not (a bug, or typer's own exit)."""
    exc = sole_error(caught)
    if isinstance(exc, P2PBackupError):
        fail(str(exc))
    if isinstance(exc, OSError) and exc.filename is None and disk_full(exc):
        # A write into the home (`serve` starting, `init`) that names no file.
        home = getattr(STATE, "home", None)
        fail(full_disk_line(home.path) if home is not None else os_error_line(exc))
    if isinstance(exc, OSError):
        fail(os_error_line(exc))
    if isinstance(exc, ValueError):
        fail(str(exc), USAGE)
    if isinstance(exc, KeyboardInterrupt):
        fail("interrupted", INTERRUPTED)


def emit(result: Result, as_json: bool, human: Render) -> None:
    STATE.answered = True
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=_jsonable))
    else:
        say(human(result))


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON: {type(value).__name__}")


def call_peer(
    op: str,
    request: Request = NO_ARGS,
    on_progress: Callable[[Result], None] | None = None,
    timeout: float | None = None,
) -> Result:
    return control_client.call(
        STATE.home.control_socket, op, request.to_args(), on_progress, timeout
    )


def call_showing_progress(op: str, request: Request, kind: str) -> Result:
    """Call the peer with a progress line on the terminal while it works."""
    with live_progress(op, kind) as update:
        return call_peer(op, request, update)


def show(op: str, as_json: bool, human: Render) -> None:
    """Print what an operation without arguments answers."""
    emit(call_peer(op), as_json, human)
