"""The control socket: requests answered, progress passed on, bad requests refused in one
line, and the server serving on after each."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import cbor2
import pytest
import trio

from p2pbackup.errors import NoPeerRunning, P2PBackupError
from p2pbackup.peer import control_client
from p2pbackup.peer.control import (
    HEARTBEAT_SECONDS,
    MAX_CONTROL_FRAME,
    ControlServer,
    Progress,
    call,
    endpoint,
)
from p2pbackup.peer.requests import LsRequest
from p2pbackup.peer.results import ListedEntry, Listing
from p2pbackup.wire.frames import FrameDecoder, encode_frame


async def listing(request: LsRequest, progress: Progress) -> Listing:
    for done in (1, 2):
        await progress({"packs_checked": done, "packs": 2})
    entry = ListedEntry(request.path or "/", "dir", 0, 0o755, 1.5)
    return Listing(request.snapshot, [entry])


async def echo(args: Any, progress: Progress) -> dict[str, Any]:
    return {"args": dict(args)}


async def chatty(args: Any, progress: Progress) -> dict[str, Any]:
    """Reports from inside a nursery until its client is gone, as a backup does."""
    async with trio.open_nursery() as nursery:

        async def report() -> None:
            while True:
                await progress({"files": 1})
                await trio.sleep(0.01)

        nursery.start_soon(report)
    return {}


async def slow(args: Any, progress: Progress) -> dict[str, Any]:
    """One report, then a long step with nothing new to say."""
    await progress({"step": 1})
    await trio.sleep(35 * HEARTBEAT_SECONDS / 10)
    return {}


async def unsendable(args: Any, progress: Progress) -> dict[str, Any]:
    return {"answer": object()}  # a bug: nothing CBOR can carry


async def blocking_call(path: Path, op: str, *args: Any) -> dict[str, Any]:
    """The command line's client, in a thread: the server runs on this test's loop."""
    return await trio.to_thread.run_sync(control_client.call, path, op, *args)


# Both clients: the peer's own (trio) and the command line's (a blocking socket).
CLIENTS = pytest.mark.parametrize("client", [call, blocking_call], ids=["trio", "blocking"])


async def serving(nursery: trio.Nursery, tmp_path: Path) -> Path:
    path = tmp_path / "control.sock"
    operations = {
        "ls": endpoint(LsRequest.from_args, listing),
        "echo": echo,
        "unsendable": unsendable,
        "chatty": chatty,
        "slow": slow,
    }
    await nursery.start(ControlServer(path, operations).serve)
    return path


async def raw_exchange(path: Path, payload: bytes) -> dict[str, Any]:
    """Send `payload` as one frame's body and read the one answer."""
    stream = await trio.open_unix_socket(os.fspath(path))
    async with stream:
        await stream.send_all(encode_frame(payload, MAX_CONTROL_FRAME))
        decoder = FrameDecoder(MAX_CONTROL_FRAME)
        while (body := decoder.next_frame()) is None:
            data = await stream.receive_some(65536)
            assert data, "the server closed without answering"
            decoder.feed(data)
    answer = cbor2.loads(body)
    assert isinstance(answer, dict)
    return answer


@CLIENTS
async def test_a_request_goes_round_with_its_progress(
    nursery: trio.Nursery, tmp_path: Path, client: Any
) -> None:
    path = await serving(nursery, tmp_path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    updates: list[dict[str, Any]] = []
    result = await client(path, "ls", {"snapshot": "latest", "path": "etc"}, updates.append)
    assert result == {
        "snapshot": "latest",
        "entries": [{"path": "etc", "type": "dir", "size": 0, "mode": 0o755, "mtime": 1.5}],
    }
    assert updates == [{"packs_checked": 1, "packs": 2}, {"packs_checked": 2, "packs": 2}]
    # Bytes go as bytes, both ways.
    assert await client(path, "echo", {"key": b"\x00\xff"}) == {"args": {"key": b"\x00\xff"}}


@CLIENTS
async def test_an_unknown_operation_or_bad_argument_is_refused_in_one_line(
    nursery: trio.Nursery, tmp_path: Path, client: Any
) -> None:
    path = await serving(nursery, tmp_path)
    with pytest.raises(P2PBackupError, match=r"^unknown operation 'nope'$"):
        await client(path, "nope")
    with pytest.raises(P2PBackupError, match=r"^missing `snapshot`$"):
        await client(path, "ls", {"path": "etc"})
    assert (await client(path, "ls", {"snapshot": "s1"}))["snapshot"] == "s1"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\xff\xfe not cbor", "undecodable control frame"),
        (cbor2.dumps(["ls", {}]), "malformed control request"),
        (cbor2.dumps({"op": "ls", "args": [1, 2]}), "control arguments must be a map"),
    ],
)
async def test_a_malformed_frame_is_refused_and_the_server_serves_on(
    nursery: trio.Nursery, tmp_path: Path, payload: bytes, error: str
) -> None:
    path = await serving(nursery, tmp_path)
    answer = await raw_exchange(path, payload)
    assert answer["ok"] is False and answer["error"].startswith(error)
    assert await call(path, "echo", {"n": 1}) == {"args": {"n": 1}}


@CLIENTS
async def test_names_that_are_not_utf8_go_round_both_ways(
    nursery: trio.Nursery, tmp_path: Path, client: Any
) -> None:
    path = await serving(nursery, tmp_path)
    name = os.fsdecode(b"caf\xe9/r\xe9sum\xe9.txt")  # Latin-1, as Python holds it
    assert await client(path, "echo", {"path": name, "names": [name, "plain"]}) == {
        "args": {"path": name, "names": [name, "plain"]}
    }


@CLIENTS
async def test_an_answer_that_cannot_be_sent_is_refused_and_the_server_serves_on(
    nursery: trio.Nursery, tmp_path: Path, client: Any
) -> None:
    path = await serving(nursery, tmp_path)
    with pytest.raises(P2PBackupError, match="internal error in the peer"):
        await client(path, "unsendable")
    assert await client(path, "echo", {"n": 1}) == {"args": {"n": 1}}


async def test_a_client_that_hangs_up_midway_is_no_error(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = await serving(nursery, tmp_path)
    stream = await trio.open_unix_socket(os.fspath(path))
    request = cbor2.dumps({"op": "chatty", "args": {}})
    await stream.send_all(encode_frame(request, MAX_CONTROL_FRAME))
    await stream.receive_some(65536)  # its first progress
    await stream.aclose()  # Ctrl-C
    await trio.sleep(0.5)
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert await call(path, "echo", {"n": 1}) == {"args": {"n": 1}}


def test_a_peer_that_never_answers_is_an_error_after_the_timeout(tmp_path: Path) -> None:
    """A stopped (SIGSTOP) or hung peer's socket still takes the connection: the
    command waited forever."""
    folder = tmp_path / "control"
    folder.mkdir(mode=0o700)
    path = folder / "control.sock"
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with silent:
        silent.bind(os.fspath(path))
        silent.listen(4)  # takes connections, never accepts or answers
        with pytest.raises(P2PBackupError, match=r"said nothing on .* for 0.5 s"):
            control_client.call(path, "status", timeout=0.5)


def test_every_command_gives_up_on_a_peer_silent_past_the_heartbeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only `status`: a backup or `snapshots` asked of a stopped peer waited forever."""
    monkeypatch.setattr(control_client, "SILENCE_SECONDS", 0.3)
    folder = tmp_path / "control"
    folder.mkdir(mode=0o700)
    path = folder / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(os.fspath(path))
        silent.listen(4)
        with pytest.raises(P2PBackupError, match=r"said nothing on .* for 0.3 s; it may be hung"):
            control_client.call(path, "backup", {"paths": ["/x"]})


async def test_a_working_peer_says_so_every_heartbeat(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A step may take minutes with nothing new to report: the peer repeats its latest
    progress every HEARTBEAT_SECONDS, and the client passes on no empty one."""
    path = await serving(nursery, tmp_path)
    stream = await trio.open_unix_socket(os.fspath(path))
    frames: list[dict[str, Any]] = []
    async with stream:
        request = cbor2.dumps({"op": "slow", "args": {}})
        await stream.send_all(encode_frame(request, MAX_CONTROL_FRAME))
        decoder = FrameDecoder(MAX_CONTROL_FRAME)
        while not frames or "ok" not in frames[-1]:
            while (body := decoder.next_frame()) is None:
                data = await stream.receive_some(65536)
                assert data, "the server closed without answering"
                decoder.feed(data)
            frames.append(cbor2.loads(body))
    beat = {"heartbeat": HEARTBEAT_SECONDS}
    assert frames[0] == {"progress": {}, **beat}  # at once: the peer has the request
    assert frames[1] == {"progress": {"step": 1}}
    # 35 s of work: heartbeats at 10, 20 and 30 s repeat the latest progress.
    assert frames[2:-1] == [{"progress": {"step": 1}, **beat}] * 3
    assert frames[-1] == {"ok": True, "result": {}}
    shown: list[dict[str, Any]] = []
    for frame in frames[:-1]:
        assert control_client.answer_of(frame, shown.append) is None
    assert shown == [{"step": 1}] * 4


@CLIENTS
async def test_no_server_is_no_peer_running(tmp_path: Path, client: Any) -> None:
    with pytest.raises(NoPeerRunning, match="no peer is running"):
        await client(tmp_path / "control.sock", "status")
