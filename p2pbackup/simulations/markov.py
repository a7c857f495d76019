"""Analytic durability estimate for one erasure-coded pack, as a Markov chain.

The simulator counts how many of P packs were lost over T hours; on its own
that number says little, because losses are rare and noisy. This module
gives the number to expect, so a scenario can report it beside the
measurement and flag a disagreement that is too large to be chance.

Model: a pack is split into n shares on n distinct peers, and any k of them
rebuild it. The state is the number i of live shares. Each live share is lost
independently at rate failure_rate (lambda) per hour, so i -> i-1 at rate
i*lambda. While i < repair_below, repair restores all n shares at rate
repair_rate (mu) per hour, as a single jump i -> n. When i < k the pack is
lost for good (absorbing state k-1).

Assumptions, and where the simulation may legitimately differ:

* Lifetimes are exponential (memoryless) and independent across peers and
  packs; the simulator's crashes are scheduled, not Poisson, and one crash
  hits every pack held by that peer at once (correlated failures).
* Repair time is exponential and all-or-nothing: a repair either restores
  every missing share or nothing, and a failure during repair is not seen by
  it. Real repair is staged (detect, fetch k shares, re-place) and bounded
  by audit intervals.
* Packs are independent, so the number of lost packs out of P is binomial
  with p = loss_probability(T); for small p that is close to Poisson.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Matrix = list[list[float]]

# Total Poisson mass the uniformization series may drop, over the whole horizon.
TRUNCATION = 1e-12
# Two-sided significance for `disagreement`: flag counts outside the 99.9% interval.
ALPHA = 1e-3


@dataclass(frozen=True)
class DurabilityModel:
    """Continuous-time Markov chain of the live-share count of one pack.

    States are indexed 0..n-k+1: index j is n-j live shares, and the last
    index (n-k+1) is the absorbing "lost" state (k-1 live shares).
    """

    k: int
    n: int
    repair_below: int
    failure_rate: float
    repair_rate: float

    def __post_init__(self) -> None:
        _validate(self.k, self.n, self.repair_below, self.failure_rate, self.repair_rate)

    @property
    def lost(self) -> int:
        """Index of the absorbing state."""
        return self.n - self.k + 1

    def generator(self) -> Matrix:
        """Generator Q over states n, n-1, ..., k, lost; each row sums to zero."""
        size = self.lost + 1
        q = [[0.0] * size for _ in range(size)]
        for live in range(self.n, self.k - 1, -1):
            row = self.n - live
            # Index of live-1; for live == k that is the lost state.
            q[row][row + 1] += live * self.failure_rate
            if live < self.repair_below and self.repair_rate > 0:
                q[row][0] += self.repair_rate
            q[row][row] = -sum(q[row][col] for col in range(size) if col != row)
        return q

    def loss_probability(self, hours: float) -> float:
        """P(a pack starting with n live shares is lost within `hours`).

        Uniformization: with q the largest exit rate and P = I + Q/q,
        exp(Qt) = sum_j Pois(j; qt) P^j, a sum of non-negative terms, so tiny
        probabilities keep their relative precision. For large q*t the series
        would need ~q*t terms, so the horizon is cut into 2^s steps of at most
        one expected jump each, the step matrix is summed, then squared s times.
        Each row is renormalized to sum to one after every product: a step can
        lose less mass than a rounding error, and without that the rounding
        would compound to (1 +- 1e-16)^(2^s) and swamp the real loss.
        """
        _check_nonnegative("hours", hours)
        q_mat = self.generator()
        q = max(-q_mat[i][i] for i in range(len(q_mat)))
        if hours == 0 or q == 0:
            return 0.0
        total = q * hours
        squarings = math.ceil(math.log2(total)) if total > 1 else 0
        step = math.ldexp(total, -squarings)
        size = len(q_mat)
        uniformized = [[q_mat[i][j] / q for j in range(size)] for i in range(size)]
        for i in range(size):
            uniformized[i][i] = max(0.0, 1.0 + uniformized[i][i])
        # Squaring s times multiplies the dropped mass by up to 2^s.
        log_tolerance = math.log(TRUNCATION) - squarings * math.log(2)
        transition = self._renormalized(self._poisson_series(uniformized, step, log_tolerance))
        for _ in range(squarings):
            transition = self._renormalized(_matmul(transition, transition))
        return min(1.0, max(0.0, transition[0][self.lost]))

    def _poisson_series(self, p: Matrix, rate: float, log_tolerance: float) -> Matrix:
        """sum_j Pois(j; rate) p^j for rate <= 1, dropping a tail below exp(log_tolerance).

        A plain Poisson-tail cut-off bounds only the absolute error, but the
        loss entry needs at least j0 = n-k+1 jumps and can be far below any
        fixed tolerance (1e-27 for small lambda*t). So the cut-off is relative
        to that entry: the first term reaching loss is at least
        Pois(j0) * (k*lambda/q)^j0 and term j at most
        Pois(j) * C(j, j0) * (n*lambda/q)^j0, so the dropped part, relative,
        is at most (n/k)^j0 * sum_{r > J-j0} rate^r / r!. That bound also
        exceeds the plain tail sum_{j > J} Pois(j; rate), so both are met.
        """
        size = len(p)
        first_loss = self.lost  # minimum number of jumps from n to lost
        log_rate = math.log(rate)
        log_ratio = first_loss * math.log(self.n / self.k)
        power = [[1.0 if i == j else 0.0 for j in range(size)] for i in range(size)]
        total = [[math.exp(-rate) * x for x in row] for row in power]
        jumps = 0
        while (
            jumps < first_loss
            or log_ratio + _log_series_tail(rate, log_rate, jumps - first_loss) > log_tolerance
        ):
            jumps += 1
            power = _matmul(power, p)
            weight = math.exp(-rate + jumps * log_rate - math.lgamma(jumps + 1))
            for row, src in zip(total, power, strict=True):
                for j in range(size):
                    row[j] += weight * src[j]
        return total

    def _renormalized(self, matrix: Matrix) -> Matrix:
        """Scale each row's surviving part so the row sums to 1, trusting the loss entry.

        The loss entry is a sum of non-negative products and keeps its relative
        precision; the survival mass 1 - loss is what rounding corrupts.
        """
        for row in matrix[: self.lost]:
            surviving = sum(row[: self.lost])
            if surviving > 0:
                scale = max(0.0, 1.0 - row[self.lost]) / surviving
                row[: self.lost] = [x * scale for x in row[: self.lost]]
        matrix[self.lost] = [0.0] * self.lost + [1.0]
        return matrix

    def mean_time_to_loss_hours(self) -> float:
        """Expected hours until loss from n live shares; inf if nothing ever fails.

        Solves (-Q_TT) t = 1 over the transient states by Gaussian elimination
        in the Grassmann-Taksar-Heyman form: each pivot is recomputed as the
        sum of the remaining outgoing rates instead of by subtraction, so the
        whole solve is subtraction-free and stays accurate when repair makes
        the answer astronomically large.
        """
        if self.failure_rate == 0:
            return math.inf
        q_mat = self.generator()
        size = self.lost  # transient states 0..n-k
        # rates[i][j]: rate i -> j between transient states; leak[i]: rate i -> lost.
        rates = [[q_mat[i][j] if i != j else 0.0 for j in range(size)] for i in range(size)]
        leak = [q_mat[i][self.lost] for i in range(size)]
        rhs = [1.0] * size
        pivots = [0.0] * size
        for j in range(size):
            pivots[j] = leak[j] + sum(rates[j][col] for col in range(j + 1, size))
            if pivots[j] == 0:
                return math.inf
            for i in range(j + 1, size):
                factor = rates[i][j] / pivots[j]
                if factor == 0:
                    continue
                rates[i][j] = 0.0
                for col in range(j + 1, size):
                    if col != i:  # a self-loop leaves the censored chain unchanged
                        rates[i][col] += factor * rates[j][col]
                leak[i] += factor * leak[j]
                rhs[i] += factor * rhs[j]
        times = [0.0] * size
        for j in range(size - 1, -1, -1):
            reach = sum(rates[j][col] * times[col] for col in range(j + 1, size))
            times[j] = (rhs[j] + reach) / pivots[j]
        return times[0]


def estimate(
    k: int,
    n: int,
    repair_below: int,
    failure_rate: float,
    repair_rate: float,
    hours: float,
    packs: int,
) -> dict[str, float]:
    """Expected losses among `packs` independent packs over `hours`, for a report.

    Floats are rounded to 6 significant digits so reports stay byte-stable
    across platforms. mean_time_to_loss_hours is inf when failure_rate is 0.
    """
    if isinstance(packs, bool) or not isinstance(packs, int) or packs < 0:
        raise ValueError(f"packs must be a non-negative integer, got {packs!r}")
    model = DurabilityModel(k, n, repair_below, failure_rate, repair_rate)
    loss = model.loss_probability(hours)
    return {
        "k": k,
        "n": n,
        "repair_below": repair_below,
        "failure_rate_per_hour": _round(failure_rate),
        "repair_rate_per_hour": _round(repair_rate),
        "hours": _round(hours),
        "packs": packs,
        "loss_probability_per_pack": _round(loss),
        "expected_packs_lost": _round(packs * loss),
        "mean_time_to_loss_hours": _round(model.mean_time_to_loss_hours()),
    }


def disagreement(measured_lost: int, expected_lost: float) -> str | None:
    """None if `measured_lost` is plausible under the model, else why it is not.

    The count of lost packs is treated as Poisson with mean `expected_lost`
    and flagged when it falls outside the two-sided 99.9% interval, so a
    correct simulator raises a false alarm about once in a thousand runs.
    Zero measured against an expectation below one is never flagged.
    """
    if isinstance(measured_lost, bool) or not isinstance(measured_lost, int) or measured_lost < 0:
        raise ValueError(f"measured_lost must be a non-negative integer, got {measured_lost!r}")
    _check_nonnegative("expected_lost", expected_lost)
    if measured_lost < 1 and expected_lost < 1:
        return None
    low, high = _poisson_interval(expected_lost, ALPHA)
    if low <= measured_lost <= high:
        return None
    side = "more" if measured_lost > high else "fewer"
    return (
        f"{measured_lost} packs were lost but the Markov model expects {expected_lost:.3g} "
        f"(99.9% Poisson interval {low}..{high}), far {side} than chance explains, "
        "so the simulation and the model's assumptions disagree."
    )


def _poisson_interval(mean: float, alpha: float) -> tuple[int, int]:
    """Smallest counts whose Poisson CDF reaches alpha/2 and 1 - alpha/2."""
    if mean == 0:
        return 0, 0
    log_mean = math.log(mean)
    # Chernoff: P(X <= mean - t) <= exp(-t^2 / (2 mean)) < 1e-21 below `start`,
    # so the walk can skip the far left tail of a large mean.
    start = max(0, math.floor(mean - 10 * math.sqrt(mean) - 10))
    cdf = 0.0
    low: int | None = None
    count = start
    while True:
        cdf += math.exp(-mean + count * log_mean - math.lgamma(count + 1))
        if low is None and cdf >= alpha / 2:
            low = count
        if cdf >= 1 - alpha / 2:
            return (count if low is None else low), count
        count += 1


def _log_series_tail(rate: float, log_rate: float, last: int) -> float:
    """log of a bound on sum_{r > last} rate^r / r!, for rate <= 1.

    Terms shrink by rate/(r+1), so the tail is at most its first term over
    1 - rate/(last+2), and that ratio is at most 1/2 here.
    """
    first = last + 1
    return first * log_rate - math.lgamma(first + 1) - math.log1p(-rate / (first + 1))


def _matmul(a: Matrix, b: Matrix) -> Matrix:
    columns = list(zip(*b, strict=True))
    return [[sum(x * y for x, y in zip(row, col, strict=True)) for col in columns] for row in a]


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _check_nonnegative(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and not isinstance(value, bool)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")


def _validate(k: int, n: int, repair_below: int, failure_rate: float, repair_rate: float) -> None:
    for name, value in (("k", k), ("n", n), ("repair_below", repair_below)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if n < k:
        raise ValueError(f"n must be at least k ({k}), got {n}")
    # With n == k there is no redundancy: any failure loses the pack, repair can
    # never trigger, and repair_below == n is the only sensible value.
    if not (k < repair_below <= n or repair_below == n == k):
        raise ValueError(
            f"repair_below must satisfy k < repair_below <= n, i.e. lie in ({k}, {n}], "
            f"got {repair_below}"
        )
    _check_nonnegative("failure_rate", failure_rate)
    _check_nonnegative("repair_rate", repair_rate)
