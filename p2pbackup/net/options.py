"""The TCP transport's knobs, and the bounds on what a remote can cost that they set.

Kept apart from the transport so the limits read in one place: every
default here is a ceiling a hostile peer meets, chosen so an honest mesh
never does.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pbackup.wire.frames import DEFAULT_MAX_FRAME


@dataclass(frozen=True)
class TcpOptions:
    max_frame: int = DEFAULT_MAX_FRAME
    # The whole handshake, and a whole frame from its first byte to its last,
    # must finish within these; a silent connection with nothing pending is
    # dropped after `idle_timeout`.
    handshake_timeout: float = 10.0
    frame_timeout: float = 30.0
    # A direct dial tried in the background beside a relayed connection gets this long
    # per route; a dial a request waits on races its routes instead (`net.stagger`).
    dial_attempt_timeout: float = 3.0
    idle_timeout: float = 600.0
    max_concurrent_requests: int = 64
    outbox_frames: int = 64
    # Connections in all, and strangers still in their handshake; None: from
    # the descriptor limit, leaving room for files and our own dials.
    max_connections: int | None = None
    max_unauthenticated: int | None = None
    # While a connection owes more than this in unsent replies, its requests wait.
    reply_budget: int = 16 * 1024 * 1024
    # What all connections together may hold, frames coming in and replies going
    # out, and how many requests are answered at once over all of them: with
    # shares of at most 6 MiB, the transport stays under 96 + 16 x 6 + caps x 16 KiB.
    memory_budget: int = 96 * 1024 * 1024
    max_answering: int = 16
    # Per identity, over all its connections.
    requests_per_second: float = 500.0
    request_burst: float = 2000.0
    # Per address, whatever identity it claimed.
    dials_per_minute: float = 6.0
    dial_burst: float = 6.0
    accept_pause: float = 0.1
