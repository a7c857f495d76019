"""The report folder: reproducible JSON, real PNGs, and a report that says what happened."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.simulations.report import WALL_FIELDS, gini, reproducible, timeline, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PACK_PLOTS = [
    "live_shares.png",
    "packs_lost.png",
    "restorable.png",
    "repair_bandwidth.png",
    "lookups.png",
    "storage.png",
    "live_peers.png",
]


def _result(**overrides: Any) -> dict[str, Any]:
    hours = [float(h) for h in range(6)]
    result: dict[str, Any] = {
        "scenario": "churn",
        "seed": 7,
        "summary": "do packs survive peers leaving?",
        "params": {"peers": 20, "days": 0.25, "crash_rate": 0.1},
        "metrics": {"packs_lost": 1, "min_live_shares": 2, "k": 3, "repair_ratio": 1.25},
        "series": {
            "hours": hours,
            "live_share_counts": [
                {"10": 20},
                {"10": 18, "9": 2},
                {"10": 15, "9": 4, "8": 1},
                {"10": 17, "9": 3},
                {"10": 19, "2": 1},
                {"10": 19},
            ],
            "packs_lost": [0, 0, 0, 0, 1, 1],
            "restorable": [1.0, 1.0, 0.9, 0.95, 0.8, 0.95],
            "repair_bytes": [0, 1_200_000, 3_000_000, 3_000_000, 5_500_000, 6_000_000],
            "live_peers": [20, 19, 17, 18, 16, 18],
            "lookup_hops": [3.0, None, 2.5, 3.5, None, 3.0],
            "lookup_latency_ms": [200.0, None, 180.0, 240.0, None, 220.0],
        },
        "storage_per_peer": [5_000_000, 0, 2_500_000, 1_000_000] * 4,
        "model": {
            "expected_packs_lost": 0.02,
            "loss_probability_per_pack": 1e-3,
            "disagreement": "measured loss far above the model's expectation",
        },
        "wall_seconds": 1.5,
        "sim_seconds_per_wall_second": 14400.0,
    }
    result.update(overrides)
    return result


def test_gini_of_equal_values_is_zero() -> None:
    assert gini([5, 5, 5, 5]) == 0.0


def test_gini_of_one_holder_among_ten() -> None:
    assert gini([0] * 9 + [100]) == pytest.approx(0.9)


def test_gini_of_nothing_is_zero() -> None:
    assert gini([]) == 0.0
    assert gini([0, 0, 0]) == 0.0


def test_gini_is_scale_invariant() -> None:
    values = [1, 2, 3, 10, 0, 7]
    assert gini(values) > 0
    assert gini([v * 1000 for v in values]) == gini(values)


@given(st.lists(st.floats(min_value=0, max_value=1e12, allow_nan=False), max_size=50))
def test_gini_lies_in_unit_interval(values: list[float]) -> None:
    assert 0.0 <= gini(values) < 1.0


def test_reproducible_drops_only_wall_fields() -> None:
    result = _result()
    kept = reproducible(result)
    assert not set(WALL_FIELDS) & set(kept)
    assert set(kept) | set(WALL_FIELDS) == set(result)
    assert "wall_seconds" in result  # a copy, not an edit


def test_write_report_writes_every_file(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "churn-7"
    written = write_report(_result(), out)
    names = sorted(p.name for p in written)
    assert names == sorted(["result.json", "timing.json", "report.md", *PACK_PLOTS])
    assert all(p.parent == out and p.is_file() for p in written)
    for name in PACK_PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        assert len(data) > 5_000, name


def test_result_json_is_reproducible_and_parses_back(tmp_path: Path) -> None:
    result = _result()
    write_report(result, tmp_path / "a")
    write_report(json.loads(json.dumps(result)), tmp_path / "b")
    parsed = json.loads((tmp_path / "a" / "result.json").read_text())
    assert parsed == reproducible(result)
    assert not set(WALL_FIELDS) & set(parsed)
    assert json.loads((tmp_path / "a" / "timing.json").read_text()) == {
        "wall_seconds": 1.5,
        "sim_seconds_per_wall_second": 14400.0,
    }
    for name in ["result.json", "report.md", *PACK_PLOTS]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_report_says_what_happened(tmp_path: Path) -> None:
    write_report(_result(), tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Simulation report: churn\n")
    assert "`p2pbackup simulate churn --seed 7 --peers 20 --days 0.25`" in report
    assert "| repair_ratio | 1.25 |" in report
    assert "**Disagreement:** measured loss far above the model's expectation" in report
    assert "some pack fell below k" in report
    assert "lowest at hour 4: 80.0%" in report
    assert "6.0 MB" in report
    assert "model expected 0.02 packs lost; the run measured 1" in report
    assert "![live shares](live_shares.png)" in report
    last = report.rstrip("\n").splitlines()[-1]
    assert "not reproducible" in last and "1.5" in last


def test_report_without_disagreement_has_no_disagreement_line(tmp_path: Path) -> None:
    model = {"expected_packs_lost": 0.9, "disagreement": None}
    write_report(_result(model=model), tmp_path)
    assert "Disagreement" not in (tmp_path / "report.md").read_text()


def test_lookup_only_result_writes_only_the_lookups_plot(tmp_path: Path) -> None:
    result = _result(
        scenario="lookups",
        params={"peers": 50, "lookups": 40},
        metrics={"mean_hops": 3.2},
        series={
            "hours": [0.0, 1.0, 2.0],
            "lookup_hops": [3.0, 3.4, None],
            "lookup_latency_ms": [150.0, None, None],
            "restorable": [None, None, None],
        },
        storage_per_peer=[],
        model=None,
    )
    written = write_report(result, tmp_path)
    assert sorted(p.name for p in written) == [
        "lookups.png",
        "report.md",
        "result.json",
        "timing.json",
    ]
    report = (tmp_path / "report.md").read_text()
    assert "`p2pbackup simulate lookups --seed 7 --peers 50 --lookups 40`" in report
    assert "3.2 hops" in report and "150 ms" in report
    assert "pack was lost" not in report and "packs were lost" not in report


def test_timeline_switches_to_days_after_72_hours() -> None:
    short = timeline({"hours": [0.0, 36.0, 72.0]})
    assert (short.x, short.label) == ([0.0, 36.0, 72.0], "simulated hours")
    long = timeline({"hours": [0.0, 48.0, 96.0]})
    assert (long.x, long.label) == ([0.0, 2.0, 4.0], "simulated days")
    assert timeline({"live_peers": [5, 6]}).hours == [0.0, 1.0]


def test_long_run_report_gives_duration_in_days(tmp_path: Path) -> None:
    hours = [float(h) for h in range(0, 24 * 5, 1)]
    series = {"hours": hours, "live_peers": [10] * len(hours)}
    result = _result(series=series, storage_per_peer=[], model=None)
    written = write_report(result, tmp_path)
    assert [p.name for p in written if p.suffix == ".png"] == ["live_peers.png"]
    assert "119 simulated hours (4.96 days)" in (tmp_path / "report.md").read_text()


def test_without_matplotlib_the_report_is_written_and_says_once_how_to_get_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    written = write_report(_result(), tmp_path)
    assert sorted(p.name for p in written) == ["report.md", "result.json", "timing.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "result.json", "timing.json"]
    hint = "pip install 'p2pbackup[sim]'"
    report = (tmp_path / "report.md").read_text()
    assert report.count(hint) == 1 and "| repair_ratio | 1.25 |" in report
    assert "![" not in report
    assert capsys.readouterr().err.count(hint) == 1
    assert json.loads((tmp_path / "result.json").read_text()) == reproducible(_result())
