"""Every command's `--help` reads as a manual page: value words, no Python types."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer.main
import typer.rich_utils
from typer.testing import CliRunner

from p2pbackup.cli.app import app

# What typer shows when left alone: `<bool>`, `<int range>`, `<path>`, `{paths}`, `{PATHS}`.
PYTHON_TYPE = re.compile(r"<[a-z][\w\[\], ]*>|\{[A-Za-z_]+\}")
# A default swallowed as markup leaves its sentence's full stop behind: "folder ."
LOST_TEXT = re.compile(r"\w \.(\s|$)")


def command_paths() -> Iterator[list[str]]:
    """The argument lists that reach every command and sub-application."""
    root = typer.main.get_command(app)

    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    yield from walk(root, [])


@pytest.fixture(autouse=True)
def wide_help(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide enough that no help line wraps inside a phrase the tests look for (typer
    reads $TERMINAL_WIDTH once, at import, so the environment cannot set it here)."""
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 100)


def help_of(path: list[str]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", list(command_paths()), ids=lambda p: " ".join(p) or "app")
def test_help_shows_no_python_types_and_loses_no_text(path: list[str]) -> None:
    text = help_of(path)
    assert not PYTHON_TYPE.findall(text), text
    assert not LOST_TEXT.search(text), text


def test_every_command_is_reached() -> None:
    names = {" ".join(p) for p in command_paths()}
    assert {"serve", "status", "peers", "backup", "restore", "simulate"} <= names
    assert {"debug record-put", "debug record-get"} <= names
    assert {"config set", "config show"} <= names


def test_values_are_named_for_what_they_are_and_defaults_read_right() -> None:
    serve = help_of(["serve"])
    assert re.search(r"--listen\s+HOST:PORT", serve)
    assert re.search(r"--capacity\s+SIZE", serve) and "[default: 20GiB]" in serve
    assert re.search(r"--json\s+Print", serve)  # a flag takes no value
    simulate = help_of(["simulate"])
    assert "default: sim-reports/SCENARIO-seedS" in simulate
    assert "backup [OPTIONS] PATHS..." in help_of(["backup"])


def test_every_command_has_json() -> None:
    groups = {"", "debug", "config"}  # groups of commands, not commands
    for path in command_paths():
        if " ".join(path) not in groups:
            assert re.search(r"--json\s", help_of(path)), path
