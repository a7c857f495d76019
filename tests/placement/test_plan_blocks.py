"""Property tests for `PlacementPlan` spreading a pack over address blocks.

Hypothesis puts the candidates in a few blocks and answers the plan's
requests in any order with any outcome (stored, refused, failed, or stored
but unproven). The promise: each share goes to the closest unused peer in a
block holding the fewest of the pack's shares, so where the candidates span
enough blocks no block gets two, and a mesh in one block (or each peer in a
block of its own) is placed exactly as by distance alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.net.contact import Contact
from p2pbackup.placement.plan import PlacementPlan

OUTCOMES = ("stored", "refused", "failed", "unproven")


def _candidates(blocks: list[int]) -> list[Contact]:
    """Distinct peers, closest first; peer i's address lies in block `blocks[i]`."""
    return [Contact(bytes([i]) * 20, f"10.{b}.0.{i}", 4000 + i) for i, b in enumerate(blocks)]


def _block(contact: Contact) -> str:
    return contact.host.split(".")[1]


@dataclass
class Run:
    plan: PlacementPlan
    requests: list[tuple[int, Contact]] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)


def _answer(plan: PlacementPlan, index: int, outcome: str) -> None:
    if outcome == "stored":
        plan.on_stored(index)
    elif outcome == "refused":
        plan.on_refused(index, "disk full")
    elif outcome == "unproven":
        plan.on_unproven(index)
    else:
        plan.on_failed(index)


def _drive(shares: int, blocks: list[int], data: st.DataObject) -> Run:
    """Answer the plan's requests, checking every assignment against the spreading rule."""
    candidates = _candidates(blocks)
    run = Run(PlacementPlan(shares, shares, candidates, block_of=_block))
    remaining = list(candidates)
    in_flight: dict[int, Contact] = {}
    while True:
        for index, contact in run.plan.assignments():
            held = Counter(_block(c) for c in (*run.plan.placed.values(), *in_flight.values()))
            fewest = min(held[_block(c)] for c in remaining)
            # the closest of the peers whose block holds the fewest shares of the pack
            assert contact == next(c for c in remaining if held[_block(c)] == fewest)
            remaining.remove(contact)
            in_flight[index] = contact
            run.requests.append((index, contact))
        if not in_flight:
            assert run.plan.done
            return run
        for _ in range(data.draw(st.integers(1, len(in_flight)))):
            index = data.draw(st.sampled_from(sorted(in_flight)))
            outcome = data.draw(st.sampled_from(OUTCOMES))
            del in_flight[index]
            run.outcomes.append(outcome)
            _answer(run.plan, index, outcome)


layouts = st.integers(1, 12).flatmap(
    lambda shares: st.tuples(
        st.just(shares),
        st.lists(st.integers(0, 5), max_size=2 * shares + 4),
        st.data(),
    )
)


@settings(max_examples=200)
@given(layouts)
def test_each_share_goes_to_the_closest_peer_in_the_emptiest_block(
    args: tuple[int, list[int], st.DataObject],
) -> None:
    shares, blocks, data = args
    run = _drive(shares, blocks, data)
    asked = [contact for _, contact in run.requests]
    assert len(set(asked)) == len(asked)  # every peer asked once at most
    assert len(set(run.plan.placed.values())) == len(run.plan.placed)


@settings(max_examples=200)
@given(layouts)
def test_unproven_shares_move_on_and_are_counted(
    args: tuple[int, list[int], st.DataObject],
) -> None:
    shares, blocks, data = args
    run = _drive(shares, blocks, data)
    assert run.plan.unproven == run.outcomes.count("unproven")
    assert len(run.plan.placed) == run.outcomes.count("stored")
    if run.plan.unproven:
        assert f"{run.plan.unproven} said they stored one but could not prove it" in (
            run.plan.shortfall()
        )
    else:
        assert "prove" not in run.plan.shortfall()


@settings(max_examples=200)
@given(st.integers(1, 12), st.lists(st.integers(0, 5), max_size=30))
def test_every_peer_storing_uses_as_many_blocks_as_there_are(
    shares: int, blocks: list[int]
) -> None:
    plan = PlacementPlan(shares, shares, _candidates(blocks), block_of=_block)
    for index, _ in plan.assignments():
        plan.on_stored(index)
    used = Counter(_block(c) for c in plan.placed.values())
    assert len(plan.placed) == min(shares, len(blocks))
    assert len(used) == min(len(plan.placed), len(set(blocks)))
    if len(set(blocks)) >= shares:
        assert max(used.values(), default=0) <= 1  # one share per block at most


def _lockstep(
    shares: int, peers: int, block_of: Callable[[Contact], str], data: st.DataObject
) -> None:
    """Drive a plan by distance alone and one with `block_of` with the same answers;
    both must send the very same requests."""
    candidates = _candidates([0] * peers)
    alone = PlacementPlan(shares, shares, candidates)
    spread = PlacementPlan(shares, shares, candidates, block_of=block_of)
    in_flight: set[int] = set()
    while True:
        batch = alone.assignments()
        assert spread.assignments() == batch
        in_flight.update(index for index, _ in batch)
        if not in_flight:
            assert alone.placed == spread.placed
            return
        index = data.draw(st.sampled_from(sorted(in_flight)))
        outcome = data.draw(st.sampled_from(OUTCOMES))
        in_flight.discard(index)
        _answer(alone, index, outcome)
        _answer(spread, index, outcome)


@settings(max_examples=200)
@given(st.integers(1, 12), st.integers(0, 30), st.data())
def test_one_block_for_all_places_as_by_distance(
    shares: int, peers: int, data: st.DataObject
) -> None:
    _lockstep(shares, peers, lambda contact: "one", data)


@settings(max_examples=200)
@given(st.integers(1, 12), st.integers(0, 30), st.data())
def test_a_block_each_places_as_by_distance(shares: int, peers: int, data: st.DataObject) -> None:
    _lockstep(shares, peers, lambda contact: contact.host, data)
