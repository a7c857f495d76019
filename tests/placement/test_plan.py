"""Property tests for `PlacementPlan`: which share goes to which peer, and when it is done.

A driver plays the transport: it answers the plan's requests in an order and
with outcomes hypothesis picks, while a plain model of the promise (shares in
order to the closest peers, a refused or failed share to the next unused one,
in the order they came back) predicts every batch the plan hands out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.net.contact import Contact
from p2pbackup.placement.plan import PlacementPlan, short_reason

OUTCOMES = ("stored", "refused", "failed")
REASONS = ("disk full", "over quota", "not accepting", "shutting down")


def _candidates(count: int) -> list[Contact]:
    """Distinct peers, closest first (the order the caller hands them in)."""
    return [Contact(bytes([i]) * 20, f"10.0.0.{i}", 4000 + i) for i in range(count)]


@dataclass
class Run:
    """What the driver saw: every request in order and every answer given."""

    plan: PlacementPlan
    batches: list[list[tuple[int, Contact]]] = field(default_factory=list)
    answers: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def requests(self) -> list[tuple[int, Contact]]:
        return [request for batch in self.batches for request in batch]


def _drive(shares: int, happy: int, peers: int, data: st.DataObject) -> Run:
    """Answer the plan's requests until it has nothing in flight and nothing more to send."""
    candidates = _candidates(peers)
    run = Run(PlacementPlan(shares, happy, candidates))
    in_flight: dict[int, Contact] = {}
    model_queue, model_next = list(range(shares)), 0
    while True:
        batch = run.plan.assignments()
        expected = []
        while model_queue and model_next < peers:
            expected.append((model_queue.pop(0), candidates[model_next]))
            model_next += 1
        assert batch == expected
        run.batches.append(batch)
        in_flight.update(batch)
        assert run.plan.done is (not in_flight)
        if not in_flight:
            return run
        # several answers may arrive before the driver asks for more requests
        for _ in range(data.draw(st.integers(1, len(in_flight)))):
            _answer(run, in_flight, model_queue, data)


def _answer(
    run: Run, in_flight: dict[int, Contact], model_queue: list[int], data: st.DataObject
) -> None:
    index = data.draw(st.sampled_from(sorted(in_flight)))
    outcome = data.draw(st.sampled_from(OUTCOMES))
    reason = data.draw(st.sampled_from(REASONS))
    del in_flight[index]
    run.answers.append((index, outcome, reason))
    if outcome == "stored":
        run.plan.on_stored(index)
    elif outcome == "refused":
        run.plan.on_refused(index, reason)
        model_queue.append(index)
    else:
        run.plan.on_failed(index)
        model_queue.append(index)


runs = st.integers(1, 12).flatmap(
    lambda shares: st.tuples(
        st.just(shares), st.integers(0, shares), st.integers(0, 2 * shares + 2), st.data()
    )
)


@settings(max_examples=200)
@given(runs)
def test_share_i_goes_first_to_the_i_th_closest(args: tuple[int, int, int, st.DataObject]) -> None:
    shares, happy, peers, data = args
    run = _drive(shares, happy, peers, data)
    candidates = _candidates(peers)
    assert run.batches[0] == [(i, candidates[i]) for i in range(min(shares, peers))]


@settings(max_examples=200)
@given(runs)
def test_never_two_shares_on_one_peer(args: tuple[int, int, int, st.DataObject]) -> None:
    shares, happy, peers, data = args
    run = _drive(shares, happy, peers, data)
    asked = [contact for _, contact in run.requests]
    # every peer is asked once at most, closest first, whatever it answered
    assert asked == _candidates(peers)[: len(asked)]
    assert len(set(run.plan.placed.values())) == len(run.plan.placed)


@settings(max_examples=200)
@given(runs)
def test_a_share_is_placed_where_it_was_last_sent(
    args: tuple[int, int, int, st.DataObject],
) -> None:
    shares, happy, peers, data = args
    run = _drive(shares, happy, peers, data)
    last_sent = dict(run.requests)
    stored = {index for index, outcome, _ in run.answers if outcome == "stored"}
    assert set(run.plan.placed) == stored
    assert all(run.plan.placed[i] == last_sent[i] for i in stored)
    assert stored <= set(range(shares))


@settings(max_examples=200)
@given(runs)
def test_done_means_every_share_placed_or_every_peer_asked(
    args: tuple[int, int, int, st.DataObject],
) -> None:
    shares, happy, peers, data = args
    run = _drive(shares, happy, peers, data)
    assert run.plan.done
    assert len(run.plan.placed) == shares or len(run.requests) == peers
    assert run.plan.happy_enough is (len(run.plan.placed) >= happy)


@settings(max_examples=200)
@given(runs)
def test_refusals_and_failures_are_counted(args: tuple[int, int, int, st.DataObject]) -> None:
    shares, happy, peers, data = args
    run = _drive(shares, happy, peers, data)
    refused = [reason for _, outcome, reason in run.answers if outcome == "refused"]
    failed = [index for index, outcome, _ in run.answers if outcome == "failed"]
    assert run.plan.refusals == refused
    assert run.plan.failures == len(failed)


@settings(max_examples=100)
@given(runs)
def test_shortfall_says_what_a_user_can_act_on(args: tuple[int, int, int, st.DataObject]) -> None:
    shares, happy, peers, data = args
    run = _drive(shares, happy, peers, data)
    text = run.plan.shortfall()
    assert text.startswith(f"only {len(run.plan.placed)} distinct peers took a share")
    assert f"{happy} needed" in text
    assert f"asked {len(run.requests)} of {peers} peers found" in text
    assert f"{run.plan.failures} did not answer" in text
    # Peers that did not answer may be back soon: the same command may then work.
    assert text.endswith("once they are back") == (run.plan.failures > 0)
    refusers = {contact.node_id for contact, _ in run.plan.refused}
    if refusers:
        assert f"; {len(refusers)} peer" in text and "refused shares: " in text
        first = run.plan.refused[0]
        assert f"{first[0].node_id.hex()[:6]} " in text
    else:
        assert "refused" not in text


@given(st.integers(1, 12), st.integers(0, 12))
def test_every_peer_storing_places_share_i_on_the_i_th_closest(shares: int, peers: int) -> None:
    candidates = _candidates(peers)
    plan = PlacementPlan(shares, shares, candidates)
    for index, _ in plan.assignments():
        plan.on_stored(index)
    assert plan.assignments() == []
    assert plan.placed == {i: candidates[i] for i in range(min(shares, peers))}
    assert plan.done
    assert plan.happy_enough is (peers >= shares)


def test_no_candidates_is_done_at_once() -> None:
    plan = PlacementPlan(3, 1, [])
    assert plan.assignments() == []
    assert plan.done
    assert not plan.happy_enough
    assert "only 0 distinct peers" in plan.shortfall()


def test_a_refusal_reads_whole_up_to_its_first_colon() -> None:
    own = "this peer belongs to the pack's owner and holds none of its shares"
    assert short_reason(own) == own  # it was cut at "its"
    assert short_reason("disk full: 3 MiB free") == "disk full"
    long = " ".join(["word"] * 40)
    assert short_reason(long).endswith("word...") and len(short_reason(long)) <= 83
    assert short_reason(": nothing") == "refused"
