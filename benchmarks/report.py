"""The JSON record `make bench` writes: every figure with enough context (machine,
dataset, load) to compare runs made on other days."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import sys
from typing import Any

from benchmarks.figures import MB, PEAK_TARGET_MB, RATIO_TARGET, Run


def report(run: Run) -> dict[str, Any]:
    """The JSON record: enough context (machine, dataset, load) to compare runs later."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "python_full": sys.version,
            # Other work on the machine skews every figure; keep the evidence.
            "load_average": run.load,
        },
        "units": {"MB": MB, "rates": "dataset bytes / seconds"},
        "dataset": run.dataset.as_dict(),
        "pipeline": {
            "best": run.pipe.as_dict(),
            "runs": [p.as_dict() for p in run.pipelines],
        },
        "engine_no_network": {
            "to_thread": run.threaded.as_dict(),
            "inline": run.inline.as_dict(),
        },
        "mesh": run.mesh.as_dict(),
        "rates_mb_per_s": {
            "pipeline_limit": round(run.limit, 2),
            "engine_to_thread": round(run.rate(run.threaded.seconds), 2),
            "engine_inline": round(run.rate(run.inline.seconds), 2),
            "backup_peer": round(run.backup_rate, 2),
            "backup_wall": round(run.rate(run.first.wall_seconds), 2),
            "second_backup_peer": round(run.rate(run.second.peer_seconds), 2),
            "restore_peer": round(run.restore_rate, 2),
            "restore_wall": round(run.rate(run.restore.wall_seconds), 2),
        },
        "targets": {
            "backup_over_pipeline": {
                "value": round(run.ratio, 3),
                "target": f">= {RATIO_TARGET}",
                "pass": run.ratio_ok,
            },
            "restore_at_least_backup": {
                "value": round(run.restore_rate / run.backup_rate, 3) if run.backup_rate else 0,
                "pass": run.restore_ok,
            },
            "proofs_cost_first_backup": {
                "value": round(run.proofs_cost, 3),
                "best": round(run.proofs_cost_best, 3),
                "meaning": "first backup with proofs / without: medians (value), fastest (best)",
            },
            "peak_rss_mb": {
                "value": round(run.peak_mb, 1),
                "pass": run.peak_ok,
                "target": f"<= {PEAK_TARGET_MB}",
            },
            "restore_identical": {"pass": not run.mesh.problems},
        },
        "filesystem": run.filesystem.as_dict() if run.filesystem else None,
        "durability": run.durability.as_dict() if run.durability else None,
        "relay_on_testbed": dataclasses.asdict(run.relay) if run.relay else None,
        "total_seconds": round(run.total_seconds, 1),
    }
