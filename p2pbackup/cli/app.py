"""`p2pbackup`: the commands wired into one typer application, in the order `--help` lists them.

`common` holds the application and what every command shares; the owner's
commands and the peer's live in modules of their own. `main` is the console
script's entry point.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from typing import NoReturn

import typer

from p2pbackup.cli import mesh_commands as mesh
from p2pbackup.cli import owner_commands as owner
from p2pbackup.cli import peer_commands as peer
from p2pbackup.cli import simulate_command as simulation
from p2pbackup.cli.common import JSON_FLAG, app, debug_app
from p2pbackup.cli.config_commands import config_app

app.command()(owner.init)
app.command()(peer.serve)
app.command()(peer.status)
app.command()(peer.peers)
app.command()(mesh.invite)
app.command()(mesh.members)
app.command()(mesh.expel)
app.command()(owner.backup)
app.command()(owner.snapshots)
app.command("ls")(owner.ls_command)
app.command()(owner.restore)
app.command()(owner.check)
app.command()(owner.forget)
app.command("prune")(owner.prune_command)
app.command()(owner.repair)
app.command()(simulation.simulate)
app.add_typer(config_app, name="config")
debug_app.command("record-put")(peer.record_put)
debug_app.command("record-get")(peer.record_get)


def main() -> None:
    if JSON_FLAG in sys.argv[1:]:
        leave(_run_for_a_script())
    try:
        app()
    except SystemExit as done:
        leave(done.code)
    leave(0)


def _run_for_a_script() -> int:
    """The command under `--json`, where a script reads one object on standard output
    whatever happened: a command line that does not parse (an unknown option, a value
    of the wrong type) is one too, beside the usual message on stderr."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # click's errors, as typer carries them
        show = getattr(exc, "show", None)
        if callable(show):
            show()  # the usage line and the error, as without --json
        else:
            print(f"Error: {exc.format_message()}", file=sys.stderr)
        print(json.dumps({"error": exc.format_message(), "exit": exc.exit_code}))
        return exc.exit_code
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        print(json.dumps({"error": "aborted", "exit": 1}))
        return 1
    return code if isinstance(code, int) else 0


def leave(code: str | int | None) -> NoReturn:
    """Exit with `code` as `sys.exit` would, but without tearing the interpreter down:
    freeing every module's objects one by one took 50-130 ms after each command had
    printed its answer, and a script waits for the exit. Exit handlers still run and
    the output is flushed; with another thread still running, the usual exit waits
    for it."""
    main = threading.main_thread()
    if any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # what `sys.exit` does with a message
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to say on it
            status = status or 1
    os._exit(status)


if __name__ == "__main__":
    main()
