"""The restore-under-churn row tells a restore that differed from a mesh that did not
come back whole after a round (which says nothing about what was restored)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from benchmarks.churn import ChurnResult, ChurnRound, Loss, who_lacks_whom
from benchmarks.dataset import Dataset
from p2pbackup.cli.localmesh import LocalMesh


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


@dataclass
class _Peer:
    index: int
    alive: bool = True


class _Mesh:
    """Four peers, one stopped for good; peer 1's table lacks peers 2 and 3."""

    def __init__(self) -> None:
        self.peers = [_Peer(0), _Peer(1), _Peer(2), _Peer(3), _Peer(4, alive=False)]
        self.tables = {0: [1, 2, 3], 1: [0], 2: [0, 1, 3], 3: [0, 1, 2]}

    def status(self, index: int) -> dict[str, str]:
        return {"node_id": f"id{index}"}

    def control(self, index: int, op: str) -> dict[str, list[dict[str, str]]]:
        assert op == "peers"
        return {"peers": [{"node_id": f"id{i}"} for i in self.tables[index]]}


def test_a_bring_back_that_did_not_finish_names_the_tables_short_and_whom_they_lack() -> None:
    mesh = _Mesh()
    assert who_lacks_whom(cast(LocalMesh, mesh)) == "peer 1 lacks 2, 3"
    mesh.tables[1] = [0, 2, 3]
    assert who_lacks_whom(cast(LocalMesh, mesh)) == "every table whole by then"
