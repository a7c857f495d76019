"""What `repair` says of packs it left short: peers that hung are not a mesh too small."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from p2pbackup.cli import owner_commands
from p2pbackup.cli.app import app
from p2pbackup.cli.common import PARTIAL

REPORT: dict[str, Any] = {
    "snapshots": 1,
    "packs": 4,
    "healthy": 1,
    "degraded": 3,
    "unrecoverable": 0,
    "min_live_shares": 8,
    "unrecoverable_packs": [],
    "index_errors": [],
    "shares_rebuilt": 0,
    "still_short": 3,
}


@pytest.mark.parametrize(
    ("hung", "expected"),
    [
        ([], "3 packs still below n shares: too few peers took the rebuilt ones; add peers"),
        (
            ["ab" * 20, "cd" * 20],
            "3 packs still below n shares: 2 peers answered nothing and got none of the "
            "rebuilt shares; run `repair` again once they are back",
        ),
    ],
)
def test_packs_left_short_say_whether_peers_hung(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hung: list[str], expected: str
) -> None:
    report = {**REPORT, "hung_peers": hung}
    monkeypatch.setattr(owner_commands, "call_showing_progress", lambda *args: report)
    ran = CliRunner().invoke(app, ["--home", str(tmp_path), "repair"])
    assert ran.exit_code == PARTIAL
    assert expected in ran.output
