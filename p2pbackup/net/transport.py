"""The Transport interface that the same peer code runs on, over TCP or simulated.

A transport delivers requests to a handler and answers to the caller. It
authenticates the remote: `Remote.node_id` is proven (by a handshake on TCP,
by construction in the simulator), while `Remote.listen` and `Remote.routes`
are only what the remote claims as the ways it can be reached.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio

from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import Contact, Route
from p2pbackup.wire.common import ErrorReply
from p2pbackup.wire.messages import Message

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Remote:
    """The authenticated far end of a connection."""

    node_id: bytes
    public_key: bytes
    listen: Address | None
    # Further ways to dial the remote, as it claims them (its LAN address, relays).
    routes: tuple[Route, ...] = ()
    # Where the remote saw this peer at: the address it dialled, or the one our
    # connection came from (a NAT's public side). A claim, like `listen`.
    observed: Address | None = None
    # What the handshake's gate made of the remote: "member", "joiner" (holds an
    # invite, may only redeem it) or "open" (an open mesh admits everyone).
    standing: str = "open"
    # Where this peer sees the remote: the address it dialled, or the one the remote's
    # connection came from. Unlike `listen` and `observed`, the socket says so; None
    # when the connection came another way (through a relay).
    far: Address | None = None

    # The contact, made once: a simulated peer's remote is observed at every request.
    _contact: Contact | None = field(default=None, init=False, repr=False, compare=False)

    def contact(self) -> Contact | None:
        """A routable contact, if the remote said where it listens."""
        if self._contact is None and self.listen is not None:
            made = Contact(self.node_id, self.listen[0], self.listen[1], self.routes)
            object.__setattr__(self, "_contact", made)  # frozen: what it is made of too
        return self._contact


@dataclass(frozen=True, slots=True)
class Reply:
    remote: Remote
    message: Message
    # The address this reply came back from when we dialled it; None when it came over
    # a connection the remote opened, which proves nothing about where it listens.
    dialled: Address | None = None


Handler = Callable[[Remote, Message], Awaitable[Message]]


class Transport(Protocol):
    """What a peer needs from the network."""

    @property
    def listen(self) -> Address:
        """The address other peers reach this one at."""
        ...

    async def serve(
        self, handler: Handler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept requests and answer each with `handler` until cancelled."""
        ...

    async def request(
        self, target: Contact | Address, message: Message, timeout: float, *, dialled: bool = False
    ) -> Reply:
        """Send one request and wait for its answer; with `dialled`, only over a connection
        this peer dialled to the target (never one the target opened to us).

        With a `Contact`, the remote must prove that node id. Raises
        `PeerUnreachable` when the call cannot complete within `timeout`
        (connection refused, handshake failed, no answer, malformed answer)
        and `RemoteError` when the peer answered with an error message.
        """
        ...

    def received_from(self, node_id: bytes) -> int | None:
        """Bytes come so far over the open connections with the peer, whether read yet or
        not (0 with none open); None where the transport cannot tell."""
        ...

    async def aclose(self) -> None:
        """Drop every connection; further requests fail."""
        ...


async def answer_request(handler: Handler, remote: Remote, message: Message) -> Message:
    """Run a handler; our own errors go back as their message, bugs as a generic one."""
    try:
        return await handler(remote, message)
    except P2PBackupError as exc:
        return ErrorReply(str(exc)[:1000])
    except Exception:
        logging.getLogger("p2pbackup.net").exception("handler failed on %s", message.TYPE)
        return ErrorReply("internal error")
