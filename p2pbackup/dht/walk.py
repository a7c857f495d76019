"""Driving a `Lookup` over the network: its queries in flight together, each answer
fed back as it comes, until the state has nobody left to ask."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable

import trio

from p2pbackup.dht.lookup import Lookup
from p2pbackup.net.contact import Contact

Query = Callable[[Contact], Awaitable[Iterable[Contact] | None]]


async def walk(
    state: Lookup, query: Query, learned: Callable[[Iterable[Contact]], None] | None = None
) -> None:
    """Run `state` to its end; `query` answers with a peer's contacts, or None when it
    failed. `learned` is told every answer's contacts (a join keeps them as hearsay)."""
    send, receive = trio.open_memory_channel[tuple[Contact, Iterable[Contact] | None]](math.inf)

    async def one(contact: Contact) -> None:
        await send.send((contact, await query(contact)))

    async with trio.open_nursery() as nursery:
        pending = 0
        while True:
            for contact in state.next_queries():
                nursery.start_soon(one, contact)
                pending += 1
            if pending == 0:
                break
            contact, contacts = await receive.receive()
            pending -= 1
            if contacts is None:
                state.on_failure(contact)
            else:
                state.on_reply(contact, contacts)
                if learned is not None:
                    learned(contacts)
