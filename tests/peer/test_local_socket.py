"""Another local user against the control socket: squatting a long home's socket, talking
to a peer that is not theirs, answering in its place.

A forked child drops to uid 65534 to play that user, so these tests need root (CI runs
as root). Each attack test checks what the attacker got, not only that an error came:
the squatter must receive nothing, the stranger's connection no answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import select
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import cbor2
import pytest
import trio

from p2pbackup.cli.localmesh import CLI, LocalMesh
from p2pbackup.errors import P2PBackupError
from p2pbackup.peer import control_client
from p2pbackup.peer.control import MAX_CONTROL_FRAME, ControlServer, Progress, call
from p2pbackup.peer.home import Home
from p2pbackup.wire.frames import FrameDecoder, encode_frame

pytestmark = [
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="playing another local user needs root (setuid in a child, chown); CI is root",
    ),
    pytest.mark.timeout(180),
]

NOBODY = 65534
FAKE_ANSWER = {"ok": True, "result": {"snapshot": "planted-by-the-squatter"}}
# A peer's answers, and the squatter's, are short; a child that sees no end for this long
# is hung, and says so rather than hold the test.
HANG_GUARD = 60.0


async def _blocking_call(path: Path, op: str, args: dict[str, Any] | None = None) -> Any:
    return await trio.to_thread.run_sync(control_client.call, path, op, args)


# Both clients: the peer's own (trio) and the command line's (a blocking socket).
CLIENTS = pytest.mark.parametrize("client", [call, _blocking_call], ids=["trio", "blocking"])
Client = Callable[..., Awaitable[Any]]


def _become_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _fork(target: Callable[..., None], *args: Any) -> tuple[BaseProcess, Connection]:
    """`target(*args, conn)` in a forked child; the other end of `conn` is returned."""
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    child = multiprocessing.get_context("fork").Process(target=target, args=(*args, theirs))
    child.start()
    theirs.close()
    return child, ours


def _end(child: BaseProcess) -> None:
    child.join(HANG_GUARD)
    if child.is_alive():
        child.kill()
        child.join()


# ---- the squatter: another user who binds the socket's name first ---------------


def _read_request(client: socket.socket) -> bytes:
    """What a client sends before it waits for an answer (or hangs up): one frame."""
    client.settimeout(HANG_GUARD)
    decoder = FrameDecoder(MAX_CONTROL_FRAME)
    received = b""
    while decoder.next_frame() is None:
        try:
            data = client.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        received += data
        decoder.feed(data)
    return received


def _squat(paths: list[str], conn: Connection) -> None:
    """As uid 65534: bind each path (making its folder if none is there), answer every
    request with a planted success, and on the word from the test report what came in."""
    _become_nobody()
    listeners = []
    for path in paths:
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            os.mkdir(folder)
            os.chmod(folder, 0o777)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o777)
        listener.listen(4)
        listeners.append(listener)
    conn.send("ready")
    connections, received = 0, b""
    while True:
        ready, _, _ = select.select([conn.fileno(), *(s.fileno() for s in listeners)], [], [])
        # Connections first: one made before the word to stop is seen with it, not lost.
        for listener in (s for s in listeners if s.fileno() in ready):
            client, _ = listener.accept()
            with client:
                connections += 1
                received += _read_request(client)
                with contextlib.suppress(OSError):  # a client that hung up on us
                    client.sendall(encode_frame(cbor2.dumps(FAKE_ANSWER), MAX_CONTROL_FRAME))
        if conn.fileno() in ready:
            break
    conn.send((connections, received))


class Squatter:
    def __init__(self) -> None:
        self.child: BaseProcess | None = None
        self.conn: Connection | None = None

    def start(self, paths: list[Path]) -> None:
        self.child, self.conn = _fork(_squat, [os.fspath(p) for p in paths])
        assert self.conn.recv() == "ready"

    def report(self) -> tuple[int, bytes]:
        """How many connections it took and every byte they brought; stops it."""
        assert self.conn is not None and self.child is not None
        self.conn.send("stop")
        connections, received = self.conn.recv()
        _end(self.child)
        return connections, received

    def close(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child.join()
        if self.conn is not None:
            self.conn.close()


@pytest.fixture
def squatter() -> Iterator[Squatter]:
    made = Squatter()
    yield made
    made.close()


@pytest.fixture
def shared_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp dir like /tmp (anyone may make names in it, sticky), made the temp dir of this
    process and of the CLI it starts, with no runtime dir, so a long home's socket goes
    there; removed afterwards, whatever another user left in it."""
    made = Path(tempfile.mkdtemp(prefix="shared-"))
    made.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(made))
    monkeypatch.setenv("TMPDIR", str(made))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    yield made
    shutil.rmtree(made)


def _long_home(tmp_path: Path) -> Home:
    home = Home(tmp_path / ("long-home-" + "h" * 90))
    assert len(os.fsencode(home.path / "control.sock")) > 100
    return home


def _squatted_paths(home: Home, shared: Path) -> list[Path]:
    """Where the socket of `home` went when the path was too long, as any user could
    compute it, and where it goes now (the same before the change)."""
    digest = hashlib.blake2b(os.fsencode(home.path), digest_size=10).hexdigest()
    legacy = shared / f"p2pbackup-{digest}.sock"
    return sorted({legacy, home.control_socket})


def _cli(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--home", str(home.path), *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", [["backup", "--json"], ["status", "--json"]])
def test_a_squatted_socket_gets_nothing_and_the_cli_refuses(
    tmp_path: Path, shared_tmp: Path, squatter: Squatter, command: list[str]
) -> None:
    home = _long_home(tmp_path)
    squatter.start(_squatted_paths(home, shared_tmp))
    secret = tmp_path / "tax-returns-2025"
    secret.mkdir()
    args = [*command, str(secret)] if command[0] == "backup" else command
    result = _cli(home, *args)
    connections, received = squatter.report()
    assert received == b"" and str(secret).encode() not in received
    assert connections == 0
    assert result.returncode == 1
    assert "planted" not in result.stdout and json.loads(result.stdout)["exit"] == 1
    assert result.stderr.startswith("error: refusing the control socket")
    assert result.stderr.count("\n") == 1


def test_the_peer_refuses_a_socket_folder_another_user_made_first(
    tmp_path: Path, shared_tmp: Path, squatter: Squatter
) -> None:
    home = _long_home(tmp_path)
    assert _cli(home, "init", "--peer-only").returncode == 0
    squatted = _squatted_paths(home, shared_tmp)
    squatter.start(squatted)
    served = _cli(home, "serve", "--listen", "127.0.0.1:0")
    assert served.returncode == 1
    assert served.stderr.startswith("error: ")
    assert f"belongs to uid {NOBODY}" in served.stderr and served.stderr.count("\n") == 1
    # The squatter's names are left as they were, and nothing came to them.
    assert all(path.is_socket() and path.stat().st_uid == NOBODY for path in squatted)
    assert squatter.report() == (0, b"")


def test_a_long_home_serves_in_a_folder_of_its_own_that_the_cli_finds(
    tmp_path: Path, shared_tmp: Path
) -> None:
    with LocalMesh(tmp_path / ("long-root-" + "m" * 90), 1) as mesh:
        mesh.start()
        home = Home(mesh.peers[0].home)
        folder = home.control_socket.parent
        assert folder == shared_tmp / f"p2pbackup-{os.geteuid()}"
        info = folder.lstat()
        assert info.st_uid == os.geteuid() and info.st_mode & 0o777 == 0o700
        status = mesh.cli_json(0, "status")
        assert status["listen"] == mesh.peers[0].listen


def test_a_runtime_dir_another_user_owns_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = Path(tempfile.mkdtemp(prefix="run-"))
    try:
        os.chown(theirs, NOBODY, NOBODY)
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(theirs))
        path = _long_home(tmp_path).control_socket
        assert not path.is_relative_to(theirs)
    finally:
        shutil.rmtree(theirs)


# ---- the CLI's side: nothing goes to what another user controls -------------------


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[socket.socket]:
    """A root process listening where a peer would, to see whether anything connects."""
    folder = tmp_path / "sock"
    folder.mkdir(mode=0o700)
    made = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    made.bind(os.fspath(folder / "control.sock"))
    os.chmod(folder / "control.sock", 0o600)
    made.listen(4)
    made.setblocking(False)
    yield made
    made.close()


def _nobody_connected(listener: socket.socket) -> bool:
    try:
        client, _ = listener.accept()
    except BlockingIOError:
        return True
    client.close()
    return False


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        (lambda path: os.chown(path, NOBODY, NOBODY), "socket .* belongs to uid 65534"),
        (lambda path: os.chown(path.parent, NOBODY, NOBODY), "folder .* belongs to uid 65534"),
        (lambda path: path.chmod(0o666), "other users may write to socket"),
        (lambda path: path.parent.chmod(0o777), "other users may write to folder"),
    ],
)
@CLIENTS
async def test_the_cli_sends_nothing_to_a_socket_or_folder_others_control(
    listener: socket.socket, spoil: Callable[[Path], None], error: str, client: Client
) -> None:
    path = Path(listener.getsockname())
    spoil(path)
    # The guard only ends a client that sent and waits for an answer that never comes.
    with (
        trio.fail_after(HANG_GUARD),
        pytest.raises(P2PBackupError, match=f"^refusing the control socket: {error}"),
    ):
        await client(path, "backup", {"paths": ["/home/someone/secrets"]})
    assert _nobody_connected(listener)


@CLIENTS
async def test_the_cli_sends_nothing_to_a_process_of_another_user(
    tmp_path: Path, shared_tmp: Path, squatter: Squatter, client: Client
) -> None:
    # The squatter's socket and folder made to look like ours: only the process behind
    # them (SO_PEERCRED) says whose it is.
    path = shared_tmp / "theirs" / "control.sock"
    squatter.start([path])
    for made in (path.parent, path):
        os.chown(made, 0, 0)
    path.parent.chmod(0o700)
    path.chmod(0o600)
    with pytest.raises(P2PBackupError, match=f"runs as uid {NOBODY}, not as this user"):
        await client(path, "status")
    connections, received = await trio.to_thread.run_sync(squatter.report)
    assert received == b"" and connections == 1


# ---- the server's side: another user's connection gets no answer ------------------


def _ask_as_nobody(path: str, conn: Connection) -> None:
    """As uid 65534: connect, ask for a backup, and report every byte the server sends
    back before it hangs up."""
    _become_nobody()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(HANG_GUARD)
    answer = b""
    try:
        client.connect(path)
        request = {"op": "status", "args": {}}
        client.sendall(encode_frame(cbor2.dumps(request), MAX_CONTROL_FRAME))
        while data := client.recv(65536):
            answer += data
        conn.send(("closed", answer))
    except OSError as exc:
        conn.send((type(exc).__name__, answer))
    finally:
        client.close()


async def test_a_connection_from_another_user_is_closed_without_an_answer(
    nursery: trio.Nursery,
) -> None:
    served: list[str] = []

    async def status(args: Any, progress: Progress) -> dict[str, Any]:
        served.append("status")
        return {"node_id": "the peer's"}

    folder = Path(tempfile.mkdtemp(prefix="ctl-"))
    try:
        path = folder / "control.sock"
        await nursery.start(ControlServer(path, {"status": status}).serve)
        # Opened up after the start, as a mistake might: the user check stands alone.
        folder.chmod(0o711)
        path.chmod(0o666)
        child, conn = _fork(_ask_as_nobody, os.fspath(path))
        (how, answer) = await trio.to_thread.run_sync(conn.recv)
        await trio.to_thread.run_sync(_end, child)
        # Hung up on, never answered; whether the hang-up came before or after the
        # request was written is up to the scheduler.
        assert answer == b""
        assert how in {"closed", "ConnectionResetError", "BrokenPipeError"}
        assert served == []
        # The server serves on, and its own user is answered (through a socket closed
        # again, as the client insists).
        folder.chmod(0o700)
        path.chmod(0o600)
        assert await call(path, "status") == {"node_id": "the peer's"}
        assert served == ["status"]
    finally:
        shutil.rmtree(folder)
