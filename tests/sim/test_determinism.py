"""One seed, one event order: the property every simulated result rests on."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from p2pbackup.dht.records import value_record
from p2pbackup.net.at_once import Alarm
from p2pbackup.simulations.mesh import SimMesh
from p2pbackup.simulations.runner import jumping_clock, pin_trio_scheduler
from tests.sim.helpers import TEST_DHT


def _trace_of_run(
    seed: int, clock: trio.abc.Clock | None = None
) -> list[tuple[float, tuple[str, int], tuple[str, int], str]]:
    async def main() -> list[tuple[float, tuple[str, int], tuple[str, int], str]]:
        async with trio.open_nursery() as nursery:
            mesh = await SimMesh.create(nursery, seed, dht=TEST_DHT, loss=0.02)
            trace: list[tuple[float, tuple[str, int], tuple[str, int], str]] = []
            mesh.network.trace = trace
            await mesh.grow(40, concurrency=8)
            rng = random.Random(seed)
            for peer in rng.sample(mesh.live(), 5):
                mesh.crash(peer)
            writer = rng.choice(mesh.live())
            await writer.peer.dht.put(value_record(writer.peer.identity, b"r", 1, b"v"))
            await trio.sleep(700)
            mesh.stop()
        return trace

    pin_trio_scheduler(seed)
    return trio.run(main, clock=clock or trio.testing.MockClock(autojump_threshold=0))


def test_same_seed_replays_the_same_event_order() -> None:
    first, second = _trace_of_run(3), _trace_of_run(3)
    assert len(first) > 1000
    assert first == second


def test_the_simulators_clock_replays_trios_event_order() -> None:
    """It jumps to the same instants and ends the timers due there in the same pass
    as trio's clock would in its next: the same tasks run in the same batches."""
    assert _trace_of_run(3, jumping_clock()) == _trace_of_run(3)


def test_different_seeds_give_different_event_orders() -> None:
    assert _trace_of_run(3) != _trace_of_run(4)


def test_the_alarm_delivering_in_the_networks_stead_changes_no_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delivered_inline = 0
    run_inline = Alarm._run_inline

    def counted(self: Alarm, now: float) -> None:
        nonlocal delivered_inline
        delivered_inline += 1
        run_inline(self, now)

    monkeypatch.setattr(Alarm, "_run_inline", counted)
    with_inline = _trace_of_run(3)
    assert delivered_inline > 1000

    plain_init = Alarm.__init__

    def without_inline(self: Alarm, task: trio.lowlevel.Task, inline: object = None) -> None:
        plain_init(self, task)

    monkeypatch.setattr(Alarm, "__init__", without_inline)
    delivered_inline = 0
    assert _trace_of_run(3) == with_inline
    assert delivered_inline == 0
