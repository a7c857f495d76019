"""Requests per identity and dials per address run on token buckets of an
injected clock: a flood is refused with a reason, and fifty identities that
claim one address get it dialled a few times a minute, not once each."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.errors import PeerUnreachable, RemoteError
from p2pbackup.net.connection_loop import RATE_REFUSAL
from p2pbackup.net.contact import Contact
from p2pbackup.net.options import TcpOptions
from tests.net.bounds_support import FakeClock, contact_of, counting_listener, serving


async def test_an_identity_over_its_request_rate_is_refused_until_the_bucket_refills(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="p2pbackup.net.tcp")
    clock = FakeClock()
    options = TcpOptions(requests_per_second=1.0, request_burst=3.0)
    async with (
        serving(nursery, options, clock=clock) as server,
        serving(nursery, options) as client,
    ):
        for _ in range(3):
            assert isinstance((await client.request(contact_of(server), Ping(), 5)).message, Pong)
        for _ in range(5):
            with pytest.raises(RemoteError, match=RATE_REFUSAL):
                await client.request(contact_of(server), Ping(), timeout=5)
        refusals = [r for r in caplog.records if "refusing requests" in r.getMessage()]
        assert len(refusals) == 1
        clock.now += 1.0
        assert isinstance((await client.request(contact_of(server), Ping(), 5)).message, Pong)
        # Another identity has a bucket of its own.
        async with serving(nursery, options) as other:
            assert isinstance((await other.request(contact_of(server), Ping(), 5)).message, Pong)


async def test_many_identities_claiming_one_address_get_it_dialled_a_few_times_a_minute(
    nursery: trio.Nursery,
) -> None:
    clock = FakeClock()
    options = TcpOptions(dials_per_minute=3.0, dial_burst=3.0)
    async with (
        counting_listener(nursery) as victim,
        serving(nursery, options, clock=clock) as peer,
    ):
        claims = [Contact(Identity.generate().node_id, *victim.address) for _ in range(50)]
        for contact in claims:
            with pytest.raises(PeerUnreachable):
                await peer.request(contact, Ping(), timeout=5)
        await trio.testing.wait_all_tasks_blocked(cushion=0.2)
        assert victim.dialled == 3
        clock.now += 20.0  # a minute's third: one more dial
        for contact in claims[:10]:
            with pytest.raises(PeerUnreachable):
                await peer.request(contact, Ping(), timeout=5)
        await trio.testing.wait_all_tasks_blocked(cushion=0.2)
        assert victim.dialled == 4
