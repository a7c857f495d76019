"""The local control API: the CLI talks to its running peer over a Unix socket.

Frames are the same length-prefixed CBOR as the mesh uses. A request is
`{"op": NAME, "args": {...}}`; the peer answers with any number of
`{"progress": {...}}` frames and then one `{"ok": true, "result": {...}}` or
`{"ok": false, "error": "one line"}`, which is also the answer to a frame
that does not decode or a request that is not one.

A request that arrived is answered at once with its latest progress (none yet) and
`"heartbeat": HEARTBEAT_SECONDS` beside it, repeated that often while it runs: a
client hears from a working peer however long a step takes, and tells it from a
hung one, which says nothing.

Whoever reaches the socket owns the peer, and whoever answers on it is believed: so
the socket lives in a folder only its user may enter, the server hangs up on any
other user without a word, and the client sends nothing to a socket, a folder or a
server that is not its own user's.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from p2pbackup.errors import (
    NoPeerRunning,
    P2PBackupError,
    WireError,
    os_error_line,
    sole_error,
)
from p2pbackup.peer.contracts import Args, ContractError, plain
from p2pbackup.peer.control_client import answer_of, refuse_other_user
from p2pbackup.peer.private import check_own, claim_dir, peer_uid
from p2pbackup.wire import local_text
from p2pbackup.wire.frames import FrameDecoder, encode_frame

log = logging.getLogger("p2pbackup.control")

Progress = Callable[[dict[str, Any]], Awaitable[None]]
# An operation as the socket serves it: the request's arguments in, the answer's map out.
Operation = Callable[[Args, Progress], Awaitable[dict[str, Any]]]
MAX_CONTROL_FRAME = 64 * 1024 * 1024
HEARTBEAT_SECONDS = 10.0

Req = TypeVar("Req")


def endpoint(
    parse: Callable[[Args], Req], handler: Callable[[Req, Progress], Awaitable[Any]]
) -> Operation:
    """`handler` served on the socket: arguments checked by `parse` on the way in, the
    typed answer made a plain map on the way out."""

    async def operation(args: Args, progress: Progress) -> dict[str, Any]:
        answer = plain(await handler(parse(args), progress))
        assert isinstance(answer, dict), "an operation answers with a map"
        return answer

    return operation


async def _read_frame(stream: trio.abc.ReceiveStream, decoder: FrameDecoder) -> Any:
    while True:
        frame = decoder.next_frame()
        if frame is not None:
            try:
                return local_text.loads(frame)
            except Exception as exc:  # garbage from a local client: its own problem
                raise WireError(f"undecodable control frame: {type(exc).__name__}") from None
        data = await stream.receive_some(65536)
        if not data:
            return None
        decoder.feed(data)


async def _send(stream: trio.abc.SendStream, value: dict[str, Any]) -> None:
    await stream.send_all(_encoded(value))


def _encoded(value: dict[str, Any]) -> bytes:
    return encode_frame(local_text.dumps(value), MAX_CONTROL_FRAME)


class ControlServer:
    """Serves named operations on the home's control socket until cancelled."""

    def __init__(self, path: Path, operations: dict[str, Operation]) -> None:
        self.path = path
        self.operations = operations

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        claim_dir(self.path.parent)
        self.path.unlink(missing_ok=True)  # a stale socket from a killed peer
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        try:
            await sock.bind(os.fspath(self.path))
            os.chmod(self.path, 0o600)
            sock.listen(16)
            listener = trio.SocketListener(sock)
            task_status.started()
            await trio.serve_listeners(self._handle, [listener])
        finally:
            self.path.unlink(missing_ok=True)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            uid = peer_uid(stream.socket)
            if uid is not None and uid != os.geteuid():
                log.warning("control: hung up on a connection from uid %d", uid)
                return
            sending = trio.Lock()
            latest: dict[str, Any] = {}

            async def progress(update: dict[str, Any], beat: bool = False) -> None:
                # Parallel tasks report; progress is cumulative, so a frame that
                # would wait for another one's send is simply skipped.
                nonlocal latest
                latest = update
                if sending.locked():
                    return
                frame: dict[str, Any] = {"progress": update}
                if beat:
                    frame["heartbeat"] = HEARTBEAT_SECONDS
                async with sending:
                    await _send(stream, frame)

            async def heartbeat() -> None:
                while True:
                    await trio.sleep(HEARTBEAT_SECONDS)
                    await progress(latest, beat=True)

            try:
                frame = await _read_frame(stream, FrameDecoder(MAX_CONTROL_FRAME))
                if frame is None:
                    return
                request = ControlRequest.from_frame(frame)
                await progress(latest, beat=True)  # at once: the request arrived
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(heartbeat)
                    reply = await self._dispatch(request, progress)
                    nursery.cancel_scope.cancel()
            except Exception as exc:
                if isinstance(sole_error(exc), trio.BrokenResourceError | trio.ClosedResourceError):
                    return  # the client went away (Ctrl-C), in whatever nurseries wrapped it
                reply = _refusal(_explain(exc))
            try:
                encoded = _encoded(reply)
            except Exception as exc:  # an answer that cannot be sent ends this request only
                encoded = _encoded(_refusal(_explain(exc)))
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                async with sending:
                    await stream.send_all(encoded)

    async def _dispatch(self, request: ControlRequest, progress: Progress) -> dict[str, Any]:
        operation = self.operations.get(request.op)
        if operation is None:
            raise ContractError(f"unknown operation {request.op!r}")
        return {"ok": True, "result": await operation(request.args, progress)}


@dataclass(frozen=True)
class ControlRequest:
    """The envelope of every request: which operation, with which arguments."""

    op: str
    args: Args

    @classmethod
    def from_frame(cls, frame: Any) -> ControlRequest:
        if not isinstance(frame, dict) or not isinstance(frame.get("op"), str):
            raise ContractError("malformed control request")
        args = frame.get("args") or {}
        if not isinstance(args, dict):
            raise ContractError("control arguments must be a map")
        return cls(frame["op"], args)

    def to_frame(self) -> dict[str, Any]:
        return {"op": self.op, "args": dict(self.args)}


def _explain(caught: Exception) -> str:
    """The one line a failed operation answers with, whatever nurseries wrapped its error
    in: the project's own message, or the path and reason of a system error (a user's
    path that is missing, unwritable or not a folder); only a bug's traceback is logged."""
    exc = sole_error(caught)
    if isinstance(exc, P2PBackupError):  # a refused request among them
        if isinstance(exc, WireError):
            log.warning("control: %s", exc)
        return str(exc)
    if isinstance(exc, OSError):
        line = os_error_line(exc)
        log.warning("control: %s", line)
        return line
    log.error("control operation failed", exc_info=caught)
    return "internal error in the peer; see its log"


def _refusal(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


async def call(
    path: Path,
    op: str,
    args: dict[str, Any] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """`control_client.call` for callers already inside trio (the peer's own tools)."""
    try:
        check_own(path.parent, "folder")
        check_own(path, "socket")
        stream = await trio.open_unix_socket(os.fspath(path))
    except (FileNotFoundError, ConnectionRefusedError):
        raise NoPeerRunning(f"no peer is running for this home (no answer on {path})") from None
    async with stream:
        refuse_other_user(peer_uid(stream.socket), path)
        await _send(stream, ControlRequest(op, args or {}).to_frame())
        decoder = FrameDecoder(MAX_CONTROL_FRAME)
        while True:
            result = answer_of(await _read_frame(stream, decoder), on_progress)
            if result is not None:
                return result
