"""The bench's pure helpers: which files the 1% change picks, how it is undone, and
how medians, spreads, ratios and verdicts are worked out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.compare import OURS, Comparison, Sample, ratio, spread
from benchmarks.compare_view import cpu_lines
from benchmarks.dataset import scan
from benchmarks.pipeline import PipelineResult
from benchmarks.rivals import INSTALL_HINT, find_rivals
from benchmarks.workload import Workload, pick_changed, regular_files


def test_the_one_percent_is_the_same_files_whatever_the_listing_order() -> None:
    files = [Path(f"/t/f{i:04d}") for i in range(1000)]
    picked = pick_changed(files)
    assert len(picked) == 10
    assert set(picked) <= set(files)
    assert pick_changed(list(reversed(files))) == picked
    assert pick_changed(files, seed=20) != picked


def test_a_small_tree_still_gets_one_changed_file_and_an_empty_one_none() -> None:
    assert len(pick_changed([Path("/t/a"), Path("/t/b")])) == 1
    assert pick_changed([]) == []


def test_a_change_rewrites_part_of_each_file_and_undo_puts_bytes_and_times_back(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    contents = {"a.h": bytes(range(256)) * 40, "b.h": b"", "c.h": b"x"}
    for name, data in contents.items():
        (tree / name).write_bytes(data)
        os.utime(tree / name, ns=(1_000_000_000, 2_000_000_000))
    files = regular_files(tree)
    dataset = scan((tree,), "tree")
    workload = Workload(tmp_path, dataset, dataset, changed=files)

    workload.change(0)
    for path in files:
        assert path.read_bytes() != contents[path.name]
        assert path.stat().st_mtime_ns != 2_000_000_000
    a = (tree / "a.h").read_bytes()
    assert len(a) == len(contents["a.h"]) and a[:100] == contents["a.h"][:100]

    workload.undo()
    for path in files:
        assert path.read_bytes() == contents[path.name]
        assert path.stat().st_mtime_ns == 2_000_000_000


def test_spread_and_ratio_use_medians_not_the_best_run() -> None:
    assert spread([3.0, 1.0, 2.0]) == "2.00 (1.00 to 3.00)"
    assert spread([]) == "-"
    assert ratio([1.0, 4.0, 5.0], [2.0, 2.0, 9.0]) == 2.0
    assert ratio([1.0], []) == 0.0


def test_verdicts_compare_medians_with_restic_and_with_the_limit() -> None:
    c = Comparison([OURS, "restic"])
    for n, (ours, theirs) in enumerate([(1.0, 1.0), (1.5, 1.0), (1.2, 1.0)]):
        c.samples.append(Sample(OURS, "big_backup", n, ours, {"peer_seconds": ours}))
        c.samples.append(Sample("restic", "big_backup", n, theirs))
    verdicts = {target: (value, ok) for target, value, ok in c.verdicts(300)}
    assert verdicts["big-file backup ≤ 1.3x restic"] == ("1.20x", True)
    assert verdicts["restore of the big file ≤ 1x restic"] == ("0.00x", False)  # no runs
    c.samples[2].seconds = c.samples[4].seconds = 2.0
    verdicts = {target: (value, ok) for target, value, ok in c.verdicts(300)}
    assert verdicts["big-file backup ≤ 1.3x restic"] == ("2.00x", False)


def test_a_missing_tool_is_skipped_with_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    found, skipped = find_rivals(tmp_path)
    assert found == []
    assert [line.split(":")[0] for line in skipped] == ["restic", "borg"]
    assert all(INSTALL_HINT in line for line in skipped)


def test_the_cpu_line_says_how_much_of_the_limit_the_cores_allow_at_best(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = Comparison([OURS])
    assert cpu_lines(c) == []  # no big-file backup ran
    for n, (owner, engine, holders) in enumerate(
        [(0.8, 0.6, 1.1), (0.9, 0.7, 1.0), (0.7, 0.5, 1.2)]
    ):
        detail = {
            "owner_peer_cpu_seconds": owner,
            "engine_cpu_seconds": engine,
            "other_peers_cpu_seconds": holders,
        }
        c.samples.append(Sample(OURS, "big_backup", n, 1.5, detail))
    c.big_limits = [PipelineResult(seconds=0.54)]
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    [(label, value)] = cpu_lines(c)
    assert label.startswith("big-file backup, CPU s of our processes")
    # 2.5 CPU seconds on two cores take 1.25 s at best: 0.54 s is 0.43 of that.
    assert value == "2.5 (0.8 / 0.6 / 1.1); at most 0.43 of the limit on 2 cores"
