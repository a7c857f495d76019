"""The restore-under-churn row tells a restore that differed from a mesh that did not
come back whole after a round (which says nothing about what was restored)."""

from __future__ import annotations

from typing import cast

from benchmarks.churn import ChurnResult, ChurnRound, Loss
from benchmarks.dataset import Dataset


def _result() -> ChurnResult:
    result = ChurnResult(cast(Dataset, None))
    result.rounds.append(ChurnRound(0.7, 1.2, [Loss(4, "SIGKILL", 0.1)], identical=True))
    return result


def test_a_round_cut_short_is_no_difference() -> None:
    result = _result()
    result.stopped = "after round 1: routing tables holding 11: not so after 120s"
    verdict = result.row()[3]
    assert verdict.startswith("identical; stopped after round 1")
    assert "differences" not in verdict


def test_restored_bytes_that_differ_are_counted() -> None:
    result = _result()
    result.problems.append("churned: a/b: content differs")
    assert result.row()[3] == "1 differences"
