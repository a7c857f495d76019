"""How `make test` shares two cores.

A module whose tests share one expensive module-scoped fixture (a mesh of real peer
processes, a testbed of network namespaces) runs whole on one worker, so that fixture
is built once, not once per worker; every other test is a unit of its own. The units
expected to take longest start first and the short ones fill in behind them, so that
neither worker is left with one long test while the other idles at the end.

pytest-xdist's own `xdist_group` marks are not used for this: from pytest 9.2 on its
`loadgroup` scheduler silently stops grouping (it rewrites a node id field pytest no
longer reads, pytest-dev/pytest-xdist#1386). The grouping here is by module path, read
from the node ids the scheduler is given, with no private pytest field involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Property tests assert what holds, never how fast: hypothesis's default 200 ms
# deadline per example made them timed tests that failed on a loaded machine.
settings.register_profile("p2pbackup", deadline=None)
settings.load_profile("p2pbackup")

_TESTS = Path(__file__).parent

# Folders whose modules run whole on one worker: their tests share module fixtures
# (meshes of processes, a testbed), and a module split over two workers builds them twice.
_WHOLE_MODULES = ("tests/peer/", "tests/netbed/")

# Longest first, as measured with --durations on two workers: a unit's rank is the
# position of the first prefix its node id starts with; units not listed come after
# these, in collection order. Only the order depends on this list, never what runs.
_LONGEST_FIRST = (
    "tests/sim/test_scenarios.py::test_a_month_of_churn",
    "tests/sim/test_scenarios.py::test_scenario_keeps_its_invariants",
    "tests/peer/test_backup_mesh.py",
    "tests/sim/test_scenarios.py::test_one_seed_replays",
    "tests/sim/test_relayed_world.py",
    "tests/sim/test_dht_mesh.py::test_records_written_with_w3",
    "tests/peer/test_small_mesh.py",
    "tests/peer/test_whole_mesh_restart.py",
    "tests/peer/test_membership_mesh.py",
    "tests/peer/test_membership_expel.py",
    "tests/sim/test_dht_mesh.py",
    "tests/peer/test_restart_mesh.py",
    "tests/peer/test_repair_mesh.py",
    "tests/peer/test_tcp_mesh.py",
    "tests/peer/test_churn_mesh.py",
    "tests/peer/test_exhaustion_process.py",
    "tests/sim/test_rebalance.py",
    "tests/netbed/test_mesh.py",
    "tests/sim/test_gates_records.py",
    "tests/peer/test_full_disk.py",
    "tests/peer/test_squat_mesh.py",
    "tests/peer/test_addresses.py",
    "tests/peer/test_readme.py",
    "tests/store/test_store_machine.py",
    "tests/netbed/",
    "tests/dht/test_quorum_machine.py",
    "tests/peer/",
    "tests/sim/",
    "tests/mesh/",
    "tests/net/",
)


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its module where the module runs whole."""
    module = nodeid.split("::", 1)[0]
    return module if module.startswith(_WHOLE_MODULES) else nodeid


def rank_of(nodeid: str) -> int:
    for rank, prefix in enumerate(_LONGEST_FIRST):
        if nodeid.startswith(prefix):
            return rank
    return len(_LONGEST_FIRST)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # On an xdist worker only: the order the workers report is the order units are handed
    # out in. A plain run keeps pytest's order. Stable, so a module's tests keep theirs.
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: rank_of(item.nodeid))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class ModuleUnits(LoadScopeScheduling):
        """xdist's scope scheduler with our units, handed out in collection order."""

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    # xdist would otherwise put the units with the most tests first, not the longest.
    config.option.loadscopereorder = False
    return ModuleUnits(config, log)
