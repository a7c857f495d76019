"""Running one authenticated connection: reading requests and replies, answering each
request in its own task, and writing frames in order, within the transport's bounds.

Kept apart from the transport, which owns how connections are made and found;
this owns what a connection costs while it lives (decision 0019).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from p2pbackup.errors import HandshakeError, WireError
from p2pbackup.net.connection import Connection, Outgoing, Ticket
from p2pbackup.net.framing import Closed, receive_big
from p2pbackup.net.handshake import ABYTES
from p2pbackup.net.limits import ByteBudget, RateLimit
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.outbox import SmallFirst
from p2pbackup.net.transport import Handler, answer_request
from p2pbackup.wire.common import ErrorReply
from p2pbackup.wire.frames import encode_frame, frame_prefix
from p2pbackup.wire.messages import Message, decode_message, encode_message

log = logging.getLogger("p2pbackup.net.tcp")

RATE_REFUSAL = "too many requests from this peer; slow down"
# A frame below this goes out in one send, its prefix joined to it: copying a proof's
# block (64 KiB) costs less than a send of its own prefix, which was a segment of its
# own and woke the reader once more (decision 0070). A share still goes out uncopied.
JOIN_BELOW = 128 * 1024


def encode_checked(request_id: int, message: Message, max_frame: int) -> bytes:
    payload = encode_message(request_id, message)
    if len(payload) > max_frame:
        raise WireError(f"a {message.TYPE} message of {len(payload)} bytes exceeds the limit")
    return payload


class ConnectionLoop:
    """What every connection of one transport shares: its options, its memory budget,
    the per-identity request rate and the cap on requests answered at once."""

    def __init__(
        self,
        options: TcpOptions,
        budget: ByteBudget,
        requests: RateLimit,
        handler: Callable[[], Handler | None],
    ) -> None:
        self.options = options
        self._budget = budget
        self._requests = requests
        self._answering = trio.CapacityLimiter(options.max_answering)
        self._handler = handler

    def _encode(self, request_id: int, message: Message) -> bytes:
        return encode_checked(request_id, message, self.options.max_frame)

    async def _receive(self, conn: Connection) -> bytes | memoryview:
        options = self.options
        return await receive_big(
            conn.stream, conn.decoder, options.frame_timeout, options.idle_timeout, self._budget
        )

    async def run(self, conn: Connection) -> None:
        """Serve `conn` until it ends; it is closed when this returns."""
        try:
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop, conn)
                    await self._read_until_closed(conn, nursery)
                    nursery.cancel_scope.cancel()
        finally:
            conn.close()
            await trio.aclose_forcefully(conn.stream)

    async def _read_until_closed(self, conn: Connection, nursery: trio.Nursery) -> None:
        # Errors end here, not in the nursery, so they are logged as one reason.
        limiter = trio.CapacityLimiter(self.options.max_concurrent_requests)
        try:
            await self._read_loop(conn, nursery, limiter)
        except (WireError, HandshakeError) as exc:
            log.warning("closing connection with %s: %s", conn.label, exc)
        except (Closed, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("connection with %s ended: %s", conn.label, reason(exc))
        except Exception:  # a bug here must cost one connection, not the peer
            log.exception("closing connection with %s after an internal error", conn.label)

    async def _read_loop(
        self, conn: Connection, nursery: trio.Nursery, limiter: trio.CapacityLimiter
    ) -> None:
        options = self.options
        while True:
            # A remote that does not read its replies gets no more of them made.
            await conn.wait_for_room(options.reply_budget, options.idle_timeout)
            ciphertext = await self._receive(conn)
            weight = len(ciphertext)
            # Opened where it lies and decoded, the frame is let go before waiting on.
            request_id, message = decode_message(conn.channel.open(ciphertext))
            del ciphertext
            if conn.is_reply(request_id):
                waiter = conn.pending.get(request_id)
                if waiter is not None:  # else a reply that came after its caller gave up
                    waiter.message = message
                    waiter.event.set()
                continue
            if not self._requests.allow(conn.remote.node_id):
                if self._requests.first_refusal(conn.remote.node_id):
                    log.warning(
                        "refusing requests from %s: more than %g a second",
                        conn.label,
                        options.requests_per_second,
                    )
                await self._send_reply(conn, self._encode(request_id, ErrorReply(RATE_REFUSAL)))
                continue
            # A peer that floods us with requests waits for its earlier ones, and
            # every connection waits its turn to be answered at all; the request
            # counts against the budget until then.
            token = Ticket(limiter, weight)
            await limiter.acquire_on_behalf_of(token)
            await self._answering.acquire_on_behalf_of(token)
            self._budget.take(token.weight)
            nursery.start_soon(self._answer, conn, request_id, message, token)

    async def _answer(
        self, conn: Connection, request_id: int, message: Message, ticket: Ticket
    ) -> None:
        try:
            handler = self._handler()
            if handler is None:
                return
            try:  # only the encoded reply is kept (and counted) while it waits
                reply = await answer_request(handler, conn.remote, message)
                payload = self._reply_payload(request_id, reply)
                del reply
            finally:
                self._answering.release_on_behalf_of(ticket)
                self._budget.give(ticket.weight)
            await self._send_reply(conn, payload)
        finally:
            ticket.limiter.release_on_behalf_of(ticket)

    def _reply_payload(self, request_id: int, reply: Message) -> bytes:
        try:
            return self._encode(request_id, reply)
        except WireError as exc:
            return self._encode(request_id, ErrorReply(str(exc)))

    async def _send_reply(self, conn: Connection, payload: bytes) -> None:
        """Queue an encoded reply, counting it as owed until the writer has sent it."""
        conn.owe(len(payload))
        try:
            await conn.outbox_send.send(Outgoing(payload, reply=True))
        except BaseException:  # cancelled or closed: it was never queued
            conn.paid(len(payload))
            raise

    async def _write_loop(self, conn: Connection) -> None:
        limit = self.options.max_frame + ABYTES
        try:
            frames = SmallFirst(conn.outbox_receive)
            while (outgoing := await frames.next()) is not None:
                size, reply = len(outgoing), outgoing.reply
                sealed = conn.channel.seal(outgoing.payload)
                del outgoing  # the sealed copy stands for the counted payload
                if len(sealed) < JOIN_BELOW:
                    await conn.stream.send_all(encode_frame(sealed, limit))
                else:  # a share: joining prefix and body would copy it once more
                    await conn.stream.send_all(frame_prefix(len(sealed), limit))
                    await conn.stream.send_all(sealed)
                del sealed  # nor kept while the outbox is empty
                if reply:
                    conn.paid(size)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("cannot write to %s: %s", conn.label, reason(exc))
            conn.close()


def reason(exc: BaseException) -> str:
    """Why a connection ended, in a few words for the log."""
    if isinstance(exc, Closed):
        return "closed by the peer"
    return str(exc) or type(exc).__name__
