"""The analytic durability model behind the simulator's loss report."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from p2pbackup.simulations.markov import DurabilityModel, disagreement, estimate

HOURS_PER_YEAR = 8760.0
PROPERTY = settings(max_examples=60, deadline=None)


def binomial_loss(k: int, n: int, failure_rate: float, hours: float) -> float:
    """P(more than n-k of n exponential lifetimes end before `hours`)."""
    p = -math.expm1(-failure_rate * hours)
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(n - k + 1, n + 1))


def renewal_mean_time_to_loss(model: DurabilityModel) -> float:
    """Mean time to loss from cycles n -> down -> (repair back to n | loss).

    Independent of the linear solve: a cycle ends in loss with probability
    prod(down_i), lasts sum(P(reach i) / exit_i), and by Wald's identity the
    mean time to loss is the mean cycle length over the loss probability.
    """
    reach, duration = 1.0, 0.0
    for live in range(model.n, model.k - 1, -1):
        down = live * model.failure_rate
        repair = model.repair_rate if live < model.repair_below else 0.0
        duration += reach / (down + repair)
        reach *= down / (down + repair)
    return duration / reach


def two_share_loss(failure_rate: float, repair_rate: float, hours: float) -> float:
    """Exact loss probability for k=1, n=2, repair_below=2 from the 2x2 eigenvalues."""
    trace = -(3 * failure_rate + repair_rate)
    det = 2 * failure_rate**2
    fast = (trace - math.sqrt(trace * trace - 4 * det)) / 2
    slow = det / fast  # avoids cancelling in (trace + sqrt(...)) / 2
    numerator = -fast * math.expm1(slow * hours) + slow * math.expm1(fast * hours)
    return numerator / (fast - slow)


@st.composite
def models(draw: st.DrawFn, max_repair: float = 100.0) -> DurabilityModel:
    k = draw(st.integers(1, 4))
    n = draw(st.integers(k + 1, k + 4))
    return DurabilityModel(
        k=k,
        n=n,
        repair_below=draw(st.integers(k + 1, n)),
        failure_rate=draw(st.floats(1e-4, 1.0)),
        repair_rate=draw(st.floats(0.0, max_repair)),
    )


hours_st = st.floats(0.01, 1000.0)


def at_most(a: float, b: float) -> bool:
    """a <= b up to the model's ~1e-12 relative truncation."""
    return a <= b * (1 + 1e-9) + 1e-300


# --- generator ---------------------------------------------------------------------------


def test_generator_rows_and_transitions() -> None:
    q = DurabilityModel(k=2, n=4, repair_below=3, failure_rate=0.5, repair_rate=7.0).generator()
    # states: 4, 3, 2 live shares, then lost
    assert q == [
        [-2.0, 2.0, 0.0, 0.0],
        [0.0, -1.5, 1.5, 0.0],
        [7.0, 0.0, -8.0, 1.0],
        [0.0, 0.0, 0.0, 0.0],
    ]


# --- loss probability ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "failure_rate", "hours"),
    [
        (1, 1, 0.1, 3.0),
        (2, 4, 0.01, 100.0),
        (3, 5, 0.5, 1.0),
        (10, 14, 1 / HOURS_PER_YEAR, HOURS_PER_YEAR),
        (10, 30, 0.05, 200.0),  # lambda*T = 10, q*T = 300: split and squared
    ],
)
def test_without_repair_matches_binomial_closed_form(
    k: int, n: int, failure_rate: float, hours: float
) -> None:
    model = DurabilityModel(k, n, n, failure_rate, repair_rate=0.0)
    assert model.loss_probability(hours) == pytest.approx(
        binomial_loss(k, n, failure_rate, hours), rel=1e-9, abs=1e-15
    )


@pytest.mark.parametrize(
    ("failure_rate", "repair_rate", "hours"),
    [
        (0.01, 1.0, 100.0),
        (0.01, 1.0, 1000.0),
        (0.01, 100.0, 1000.0),  # lambda*T = 10, mu*T = 1e5
        (1e-4, 10.0, 1e4),  # mu*T = 1e5, loss around 1e-5
    ],
)
def test_with_repair_matches_exact_two_share_chain(
    failure_rate: float, repair_rate: float, hours: float
) -> None:
    model = DurabilityModel(1, 2, 2, failure_rate, repair_rate)
    assert model.loss_probability(hours) == pytest.approx(
        two_share_loss(failure_rate, repair_rate, hours), rel=1e-7
    )


def test_small_exposure_loss_is_tiny_positive_and_exact() -> None:
    model = DurabilityModel(10, 14, 13, failure_rate=1e-9, repair_rate=0.0)
    loss = model.loss_probability(1.0)
    assert 0 < loss < 1e-30
    assert loss == pytest.approx(binomial_loss(10, 14, 1e-9, 1.0), rel=1e-9)


def test_fast_repair_makes_loss_much_smaller() -> None:
    year = HOURS_PER_YEAR
    unrepaired = DurabilityModel(10, 14, 13, 1 / year, 0.0).loss_probability(year)
    repaired = DurabilityModel(10, 14, 13, 1 / year, 10.0).loss_probability(year)
    assert unrepaired > 0.5
    assert 0 < repaired < 1e-6 * unrepaired


def test_zero_hours_or_no_failures_lose_nothing() -> None:
    assert DurabilityModel(2, 4, 3, 0.1, 1.0).loss_probability(0.0) == 0.0
    assert DurabilityModel(2, 4, 3, 0.0, 1.0).loss_probability(1e6) == 0.0


@PROPERTY
@given(models(), hours_st)
def test_loss_is_a_probability(model: DurabilityModel, hours: float) -> None:
    assert 0.0 <= model.loss_probability(hours) <= 1.0


@PROPERTY
@given(models(), hours_st, st.floats(1.0, 10.0))
def test_loss_increases_with_hours(model: DurabilityModel, hours: float, factor: float) -> None:
    assert at_most(model.loss_probability(hours), model.loss_probability(hours * factor))


@PROPERTY
@given(models(), hours_st, st.floats(1.0, 10.0))
def test_loss_increases_with_failure_rate(
    model: DurabilityModel, hours: float, factor: float
) -> None:
    faster = DurabilityModel(
        model.k, model.n, model.repair_below, model.failure_rate * factor, model.repair_rate
    )
    assert at_most(model.loss_probability(hours), faster.loss_probability(hours))


@PROPERTY
@given(models(max_repair=10.0), hours_st, st.floats(1.0, 10.0))
def test_loss_decreases_with_repair_rate(
    model: DurabilityModel, hours: float, factor: float
) -> None:
    faster = DurabilityModel(
        model.k, model.n, model.repair_below, model.failure_rate, model.repair_rate * factor
    )
    assert at_most(faster.loss_probability(hours), model.loss_probability(hours))


@PROPERTY
@given(models(), hours_st)
def test_loss_decreases_with_more_shares(model: DurabilityModel, hours: float) -> None:
    wider = DurabilityModel(
        model.k, model.n + 1, model.repair_below, model.failure_rate, model.repair_rate
    )
    assert at_most(wider.loss_probability(hours), model.loss_probability(hours))


@st.composite
def repaired_horizons(draw: st.DrawFn) -> tuple[DurabilityModel, float]:
    """A model whose repair is 1e3..1e5 times faster than failure, and a long horizon."""
    k = draw(st.integers(1, 3))
    n = draw(st.integers(k + 1, k + 3))
    failure_rate = draw(st.floats(1e-3, 1e-1))
    repair_rate = n * failure_rate * 10 ** draw(st.floats(3.0, 5.0))
    model = DurabilityModel(k, n, draw(st.integers(k + 1, n)), failure_rate, repair_rate)
    shortest, longest = 100 / failure_rate, model.mean_time_to_loss_hours()
    hours = shortest * (longest / shortest) ** draw(st.floats(0.0, 1.0))
    return model, hours


@PROPERTY
@given(repaired_horizons())
def test_long_horizons_agree_with_mean_time_to_loss(case: tuple[DurabilityModel, float]) -> None:
    # With repair much faster than failure, the time to loss is nearly
    # exponential with mean MTTL once the start-up transient (~1/lambda) is
    # past, which ties uniformization at huge q*T to the linear solve.
    model, hours = case
    mean = model.mean_time_to_loss_hours()
    assert model.loss_probability(hours) == pytest.approx(-math.expm1(-hours / mean), rel=0.05)


# --- mean time to loss ---------------------------------------------------------------------


@given(st.floats(1e-6, 1e3))
def test_single_share_mean_time_is_one_over_lambda(failure_rate: float) -> None:
    model = DurabilityModel(1, 1, 1, failure_rate, repair_rate=5.0)
    assert model.mean_time_to_loss_hours() == pytest.approx(1 / failure_rate, rel=1e-12)


@PROPERTY
@given(models())
def test_mean_time_without_repair_is_sum_of_stage_means(model: DurabilityModel) -> None:
    bare = DurabilityModel(model.k, model.n, model.repair_below, model.failure_rate, 0.0)
    stages = sum(1 / (live * model.failure_rate) for live in range(model.k, model.n + 1))
    assert bare.mean_time_to_loss_hours() == pytest.approx(stages, rel=1e-12)


@PROPERTY
@given(models())
def test_mean_time_matches_renewal_argument(model: DurabilityModel) -> None:
    expected = renewal_mean_time_to_loss(model)
    assert model.mean_time_to_loss_hours() == pytest.approx(expected, rel=1e-9)


@PROPERTY
@given(models())
def test_repair_lengthens_mean_time_to_loss(model: DurabilityModel) -> None:
    assume(model.repair_rate > 1e-6 * model.failure_rate)
    bare = DurabilityModel(model.k, model.n, model.repair_below, model.failure_rate, 0.0)
    assert model.mean_time_to_loss_hours() > bare.mean_time_to_loss_hours()


def test_mean_time_stays_accurate_when_astronomical() -> None:
    model = DurabilityModel(10, 30, 29, failure_rate=0.1, repair_rate=100.0)
    mean = model.mean_time_to_loss_hours()
    assert mean > 1e30
    assert mean == pytest.approx(renewal_mean_time_to_loss(model), rel=1e-9)
    assert DurabilityModel(2, 4, 3, 0.0, 1.0).mean_time_to_loss_hours() == math.inf


# --- estimate ------------------------------------------------------------------------------


def test_estimate_reports_rounded_json_friendly_numbers() -> None:
    result = estimate(10, 14, 13, 1 / HOURS_PER_YEAR, 1.0, HOURS_PER_YEAR, packs=1000)
    model = DurabilityModel(10, 14, 13, 1 / HOURS_PER_YEAR, 1.0)
    loss = model.loss_probability(HOURS_PER_YEAR)
    assert result == {
        "k": 10,
        "n": 14,
        "repair_below": 13,
        "failure_rate_per_hour": 0.000114155,
        "repair_rate_per_hour": 1.0,
        "hours": 8760.0,
        "packs": 1000,
        "loss_probability_per_pack": float(f"{loss:.6g}"),
        "expected_packs_lost": float(f"{1000 * loss:.6g}"),
        "mean_time_to_loss_hours": float(f"{model.mean_time_to_loss_hours():.6g}"),
    }
    assert json.loads(json.dumps(result)) == result


# --- disagreement --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measured", "expected"),
    [(0, 0.2), (3, 2.5), (0, 0.99), (50, 50.0), (0, 7.0), (1000, 1000.0)],
)
def test_consistent_counts_are_not_flagged(measured: int, expected: float) -> None:
    assert disagreement(measured, expected) is None


@pytest.mark.parametrize(
    ("measured", "expected", "word"),
    [
        (40, 1.0, "more"),
        (0, 50.0, "fewer"),
        (0, 8.0, "fewer"),
        (2, 0.0, "more"),
        (1, 1e-4, "more"),
        (880, 1000.0, "fewer"),
    ],
)
def test_implausible_counts_are_explained(measured: int, expected: float, word: str) -> None:
    message = disagreement(measured, expected)
    assert message is not None
    assert str(measured) in message and word in message


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "repair_below", "failure_rate", "repair_rate", "match"),
    [
        (0, 3, 2, 0.1, 1.0, "k must be at least 1"),
        (4, 3, 3, 0.1, 1.0, "n must be at least k"),
        (2, 4, 2, 0.1, 1.0, "repair_below"),
        (2, 4, 5, 0.1, 1.0, "repair_below"),
        (2, 2, 3, 0.1, 1.0, "repair_below"),
        (2, 4, 3, -0.1, 1.0, "failure_rate"),
        (2, 4, 3, 0.1, -1.0, "repair_rate"),
        (2, 4, 3, math.nan, 1.0, "failure_rate"),
    ],
)
def test_invalid_models_are_rejected(
    k: int, n: int, repair_below: int, failure_rate: float, repair_rate: float, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        DurabilityModel(k, n, repair_below, failure_rate, repair_rate)
    with pytest.raises(ValueError, match=match):
        estimate(k, n, repair_below, failure_rate, repair_rate, hours=1.0, packs=1)


def test_invalid_horizons_and_counts_are_rejected() -> None:
    model = DurabilityModel(2, 4, 3, 0.1, 1.0)
    with pytest.raises(ValueError, match="hours"):
        model.loss_probability(-1.0)
    with pytest.raises(ValueError, match="hours"):
        estimate(2, 4, 3, 0.1, 1.0, hours=-1.0, packs=1)
    with pytest.raises(ValueError, match="packs"):
        estimate(2, 4, 3, 0.1, 1.0, hours=1.0, packs=-1)
    with pytest.raises(ValueError, match="measured_lost"):
        disagreement(-1, 1.0)
    with pytest.raises(ValueError, match="expected_lost"):
        disagreement(1, -1.0)
