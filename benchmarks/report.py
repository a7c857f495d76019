"""The JSON record `make bench` writes: every figure with enough context (machine,
dataset, load) to compare runs made on other days."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import sys
from typing import Any

from benchmarks.figures import MB, PEAK_TARGET_MB, Run


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
        "datasets": run.workload.as_dict(),
        "engine_no_network": {
            "dataset": "tree",
            "to_thread": run.threaded.as_dict(),
            "inline": run.inline.as_dict(),
        },
        "comparison": run.comparison.as_dict(PEAK_TARGET_MB),
        "filesystem": run.filesystem.as_dict() if run.filesystem else None,
        "durability": run.durability.as_dict() if run.durability else None,
        "relay_on_testbed": dataclasses.asdict(run.relay) if run.relay else None,
        "total_seconds": round(run.total_seconds, 1),
    }
