"""`p2pbackup`: the commands wired into one typer application, in the order `--help` lists them.

`common` holds the application and what every command shares; the owner's
commands and the peer's live in modules of their own. `main` is the console
script's entry point.
"""

from __future__ import annotations

from p2pbackup.cli import mesh_commands as mesh
from p2pbackup.cli import owner_commands as owner
from p2pbackup.cli import peer_commands as peer
from p2pbackup.cli.common import app, debug_app
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
app.command()(peer.simulate)
app.add_typer(config_app, name="config")
debug_app.command("record-put")(peer.record_put)
debug_app.command("record-get")(peer.record_get)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
