"""The exit status and the one line of a command, whatever wraps its error."""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from p2pbackup.cli.app import app
from p2pbackup.cli.common import PARTIAL, STATE, USAGE, emit, fail, user_errors
from p2pbackup.cli.localmesh import CLI
from p2pbackup.errors import P2PBackupError, os_error_line
from p2pbackup.peer.home import Home


def ends(error: BaseException, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit status, stderr) of a command that raised `error`."""

    @user_errors
    def command() -> None:
        raise error

    with pytest.raises(typer.Exit) as ended:
        command()
    return ended.value.exit_code, capsys.readouterr().err


def nested(error: Exception) -> ExceptionGroup[Exception]:
    """`error` as trio hands it up through two nurseries."""
    return ExceptionGroup("outer", [ExceptionGroup("inner", [error])])


def test_a_group_of_one_project_error_is_that_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert ends(nested(P2PBackupError("no peer")), capsys) == (1, "error: no peer\n")


def test_a_group_of_one_os_error_is_its_path_and_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    denied = PermissionError(errno.EACCES, "Permission denied", "/srv/x")
    assert ends(nested(denied), capsys) == (1, "error: /srv/x: permission denied\n")
    assert ends(denied, capsys) == (1, "error: /srv/x: permission denied\n")


def test_a_bad_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert ends(ValueError("bad size '3 parsecs'"), capsys) == (2, "error: bad size '3 parsecs'\n")


def test_an_interrupt_is_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert ends(KeyboardInterrupt(), capsys) == (130, "error: interrupted\n")


def test_a_bug_keeps_its_traceback() -> None:
    @user_errors
    def command() -> None:
        raise nested(KeyError("bug"))

    with pytest.raises(ExceptionGroup):
        command()


def test_an_os_error_line_names_bytes_paths_and_both_ends_of_a_rename() -> None:
    assert os_error_line(FileNotFoundError(errno.ENOENT, "No such file", b"/a\xff")) == (
        "/a\udcff: no such file"
    )
    moved = OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b")
    assert os_error_line(moved) == "/a -> /b: invalid cross-device link"
    assert os_error_line(OSError("plain")) == "plain"


def test_with_json_an_error_is_an_object_on_stdout_too(capsys: pytest.CaptureFixture[str]) -> None:
    @user_errors
    def command(as_json: bool = False) -> None:
        raise P2PBackupError("no snapshot matches 'nosuch'")

    with pytest.raises(typer.Exit):
        command(as_json=True)
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": "no snapshot matches 'nosuch'", "exit": 1}
    assert err == "error: no snapshot matches 'nosuch'\n"
    with pytest.raises(typer.Exit):
        command(as_json=False)
    assert capsys.readouterr().out == ""


def test_with_json_a_partial_answer_stays_the_one_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @user_errors
    def command(as_json: bool = False) -> None:
        emit({"files": 3, "errors": ["x"]}, as_json, str)
        fail("1 path could not be read", PARTIAL)

    with pytest.raises(typer.Exit) as ended:
        command(as_json=True)
    assert ended.value.exit_code == PARTIAL
    assert json.loads(capsys.readouterr().out) == {"files": 3, "errors": ["x"]}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["backup", "--json", "--bogus", "x"], "No such option: --bogus"),
        (["backup", "--json"], "Missing argument 'PATHS'."),
        (["--json"], "No such option: --json"),  # the options come after the command
    ],
)
def test_with_json_a_command_line_that_does_not_parse_is_an_object_too(
    tmp_path: Path, args: list[str], error: str
) -> None:
    """Parsing fails before any command runs: a script read nothing on stdout."""
    done = subprocess.run(
        [*CLI, "--home", str(tmp_path), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == USAGE
    assert json.loads(done.stdout) == {"error": error, "exit": USAGE}
    assert error in done.stderr and "Usage:" in done.stderr
    help_shown = subprocess.run([*CLI, "backup", "--help", "--json"], capture_output=True)
    assert help_shown.returncode == 0 and b"Usage" in help_shown.stdout


def test_a_full_disk_that_names_no_file_names_the_home(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`serve` starting on a full disk said only "no space left on device"."""
    STATE.home = Home(tmp_path)
    full = OSError(errno.ENOSPC, "No space left on device")
    code, err = ends(full, capsys)
    assert code == 1 and err.startswith(f"error: the disk holding {tmp_path} is full: free")
    named = OSError(errno.ENOSPC, "No space left on device", "/srv/x")
    assert ends(named, capsys) == (1, "error: /srv/x: no space left on device\n")


def test_an_option_given_where_the_restore_folder_goes_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`restore latest --target --json` restored into a new folder named `--json`."""
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(app, ["restore", "latest", "--target", "--json"])
    assert done.exit_code == USAGE
    assert "--target needs a folder, not --json" in done.output
    assert not (tmp_path / "--json").exists()
