"""The command line's end of the control socket (`control` is the peer's): one call,
made with a blocking socket.

A command makes one call and waits for its answer, so it needs no event loop;
importing trio for it was about a third of every command's start-up (70-90 ms
on the two-core machine), paid again by every script that runs a command. The
frames, and the checks that the socket, its folder and the process answering
are this user's, are those of `control.call`, which the peer's own tools use.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pbackup.errors import NoPeerRunning, P2PBackupError, WireError
from p2pbackup.peer.private import LocalAccessError, check_own, peer_uid
from p2pbackup.wire import local_text
from p2pbackup.wire.frames import FrameDecoder, encode_frame

MAX_CONTROL_FRAME = 64 * 1024 * 1024  # as `control.MAX_CONTROL_FRAME`
RECEIVE_BYTES = 65536
# A peer at work says so every `control.HEARTBEAT_SECONDS` (10 s); one silent this long
# is hung (stopped, or its event loop blocked), not slow.
SILENCE_SECONDS = 60.0


def call(
    path: Path,
    op: str,
    args: dict[str, Any] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run one operation on the peer behind `path`; its error becomes a `P2PBackupError`.
    A peer silent for `timeout` (`SILENCE_SECONDS` unless given) is one too: a stopped
    process's socket still takes the connection, and the command waited forever.

    Nothing is sent unless the socket, its folder and the process listening on it are
    this user's: `LocalAccessError` otherwise."""
    with _connect(path) as sock:
        refuse_other_user(peer_uid(sock), path)
        silence = SILENCE_SECONDS if timeout is None else timeout
        sock.settimeout(silence)
        request = {"op": op, "args": dict(args or {})}  # `control.ControlRequest`'s frame
        try:
            sock.sendall(encode_frame(local_text.dumps(request), MAX_CONTROL_FRAME))
            decoder = FrameDecoder(MAX_CONTROL_FRAME)
            while True:
                result = answer_of(_read_frame(sock, decoder), on_progress)
                if result is not None:
                    return result
        except TimeoutError:
            raise P2PBackupError(
                f"the peer said nothing on {path} for {silence:g} s; it may be hung or "
                "stopped: see its log"
            ) from None


def refuse_other_user(uid: int | None, path: Path) -> None:
    """`LocalAccessError` unless the process on the socket runs as this user."""
    if uid is not None and uid != os.geteuid():
        raise LocalAccessError(
            f"refusing the control socket: the process on {path} runs as uid {uid}, "
            "not as this user"
        )


def answer_of(
    frame: Any, on_progress: Callable[[dict[str, Any]], None] | None
) -> dict[str, Any] | None:
    """The result a final answer carries, or None after a progress frame (passed on);
    a closed connection, a malformed frame or the peer's error raises."""
    if frame is None:
        raise P2PBackupError("the peer closed the control connection before answering")
    if not isinstance(frame, dict):
        raise P2PBackupError("malformed answer from the peer")
    if "progress" in frame:
        # A heartbeat repeats the latest progress: an empty one (none yet) shows nothing.
        if on_progress is not None and (frame["progress"] or "heartbeat" not in frame):
            on_progress(frame["progress"])
        return None
    if frame.get("ok"):
        result = frame.get("result")
        return result if isinstance(result, dict) else {}
    raise P2PBackupError(str(frame.get("error", "the peer reported an error")))


def _connect(path: Path) -> socket.socket:
    try:
        check_own(path.parent, "folder")
        check_own(path, "socket")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(os.fspath(path))
        except BaseException:
            sock.close()
            raise
    except (FileNotFoundError, ConnectionRefusedError):
        raise NoPeerRunning(f"no peer is running for this home (no answer on {path})") from None
    return sock


def _read_frame(sock: socket.socket, decoder: FrameDecoder) -> Any:
    """The next frame decoded, or None once the peer closed the connection."""
    while True:
        frame = decoder.next_frame()
        if frame is not None:
            try:
                return local_text.loads(frame)
            except Exception as exc:
                raise WireError(f"undecodable control frame: {type(exc).__name__}") from None
        data = sock.recv(RECEIVE_BYTES)
        if not data:
            return None
        decoder.feed(data)
