"""Racing the ways to reach one peer, each begun a little after the one before.

A peer behind a NAT names its LAN address first and its relays after: from
outside, the LAN address swallows the dial, and trying routes one after the
other made every first request to such a peer wait out an attempt timeout
(3 s; a dial-back waited its whole 5 s) before the relay was tried. As RFC
8305 ("happy eyeballs") and libp2p's dial ranking do, the next route starts
once the one before has failed or a short delay has passed, whichever comes
first, and the first to succeed wins; the rest are cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import trio

T = TypeVar("T")

# The head start of each direct route over the next (RFC 8305's recommended delay),
# and of the direct routes over a relay, which carries every byte twice.
STAGGER = 0.25
RELAY_STAGGER = 0.5


async def first_to_succeed(
    attempts: Sequence[Callable[[], Awaitable[T]]],
    delays: Sequence[float],
    failures: tuple[type[BaseException], ...],
) -> T:
    """The first result of `attempts`, started in order, attempt i once `delays[i]`
    seconds have passed since the one before began or any attempt has failed.
    An attempt fails by raising one of `failures`; when all fail, the last
    failure is raised. One attempt alone runs in the caller's task."""
    if not attempts:
        raise ValueError("nothing to attempt")
    if len(attempts) == 1:
        return await attempts[0]()
    won: list[T] = []
    failed: list[BaseException] = []
    news = [trio.Event()]  # set when an attempt fails; a new one after each wait

    async with trio.open_nursery() as nursery:

        async def run(attempt: Callable[[], Awaitable[T]]) -> None:
            try:
                value = await attempt()
            except failures as exc:
                failed.append(exc)
                news[-1].set()
                return
            if not won:
                won.append(value)
                nursery.cancel_scope.cancel()

        for index, attempt in enumerate(attempts):
            if index:
                with trio.move_on_after(delays[index]):
                    await news[-1].wait()
                news.append(trio.Event())
            nursery.start_soon(run, attempt)
    if won:
        return won[0]
    raise failed[-1]
