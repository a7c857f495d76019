"""A peer's home: where it is found, what init leaves in it, and how it reads back.

The home holds the only copy of a peer's identity and, for an owner, the
master secret: these tests pin where it is looked for, that secrets are
owner-only, that nothing is overwritten, and that damage is reported rather
than guessed around.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest

from p2pbackup.errors import P2PBackupError
from p2pbackup.peer.home import ENV_HOME, Home, HomeError, user_temp_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


# ---- where the home is --------------------------------------------------


def test_the_option_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_HOME, str(tmp_path / "from-env"))
    assert Home.resolve(str(tmp_path / "from-option")).path == tmp_path / "from-option"


def test_the_environment_wins_over_the_platform_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ENV_HOME == "P2PBACKUP_HOME"
    monkeypatch.setenv(ENV_HOME, str(tmp_path / "from-env"))
    assert Home.resolve(None).path == tmp_path / "from-env"


def test_without_option_or_environment_the_platform_data_dir_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_HOME, raising=False)
    expected = Path(platformdirs.user_data_dir("p2pbackup")).absolute()
    assert Home.resolve(None).path == expected


@pytest.mark.skipif(sys.platform != "linux", reason="XDG data dirs are Linux's")
def test_on_linux_the_platform_dir_follows_xdg_data_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_HOME, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Home.resolve(None).path == tmp_path / "xdg" / "p2pbackup"


def test_a_chosen_home_is_made_absolute_and_user_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert Home.resolve("~/peer").path == tmp_path / "user" / "peer"
    monkeypatch.chdir(tmp_path)
    relative = Home.resolve("here/peer").path
    assert relative.is_absolute() and relative == tmp_path / "here" / "peer"
    monkeypatch.setenv(ENV_HOME, "~/via-env")
    assert Home.resolve(None).path == tmp_path / "user" / "via-env"


# ---- the control socket -------------------------------------------------


@pytest.fixture
def no_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a long home's socket goes must not hang on the session that runs the tests."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)


def test_the_control_socket_is_inside_a_short_home(home: Home) -> None:
    assert home.control_socket == home.path / "control.sock"


@pytest.mark.usefixtures("no_runtime_dir")
def test_a_socket_path_of_exactly_the_limit_stays_inside() -> None:
    # "/" + 86 letters + "/control.sock" is 100 bytes; one more letter is too long.
    fits = Home(Path("/" + "a" * 86))
    assert len(os.fsencode(fits.control_socket)) == 100
    assert fits.control_socket == fits.path / "control.sock"
    over = Home(Path("/" + "a" * 87))
    assert over.control_socket.parent == user_temp_dir()


@pytest.mark.usefixtures("no_runtime_dir")
def test_a_long_home_puts_its_socket_in_a_folder_of_the_user_under_a_stable_name() -> None:
    deep = Home(Path("/" + "/".join(["nested-folder"] * 10)))
    path = deep.control_socket
    # Not straight in the shared temp dir, where another user could bind the name first.
    assert path.parent == Path(tempfile.gettempdir()) / f"p2pbackup-{os.geteuid()}"
    assert path.suffix == ".sock" and len(path.name) == 20 + len(".sock")
    assert len(os.fsencode(path)) <= 100
    # The CLI and the serving peer compute it apart: the same home gives the same path.
    assert Home(Path(str(deep.path))).control_socket == path
    other = Home(deep.path / "other")
    assert other.control_socket != path and other.control_socket.parent == path.parent


@pytest.mark.usefixtures("no_runtime_dir")
def test_the_socket_limit_counts_bytes_not_characters() -> None:
    # 45 two-byte letters: 59 characters in all, but 104 bytes once encoded.
    wide = Home(Path("/" + "é" * 45))
    assert len(str(wide.path / "control.sock")) < 100
    assert wide.control_socket.parent == user_temp_dir()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path (as /run/user/1000 is), made 0700 and removed after."""
    with tempfile.TemporaryDirectory(prefix="run-") as made:
        yield Path(made)


def test_a_long_home_uses_a_private_runtime_dir_when_there_is_one(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = short_dir
    assert _mode(runtime) == 0o700
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    deep = Home(Path("/" + "/".join(["nested-folder"] * 10)))
    path = deep.control_socket
    assert path.parent == runtime
    assert path.name.startswith("p2pbackup-") and path.suffix == ".sock"
    assert len(path.name) == len("p2pbackup-") + 20 + len(".sock")
    assert Home(deep.path / "other").control_socket != path


def test_a_runtime_dir_others_may_enter_or_too_deep_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = Home(Path("/" + "/".join(["nested-folder"] * 10)))
    open_to_all = tmp_path / "run"
    open_to_all.mkdir()
    open_to_all.chmod(0o755)
    for runtime in (str(open_to_all), "relative/run", str(tmp_path / "missing"), ""):
        monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
        assert deep.control_socket.parent == user_temp_dir(), runtime
    too_deep = tmp_path / ("r" * 90)
    too_deep.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(too_deep))
    assert deep.control_socket.parent == user_temp_dir()


# ---- init and the peer identity -------------------------------------------


def test_create_writes_an_owner_only_identity_that_reads_back(home: Home) -> None:
    assert not home.is_initialised()
    made = home.create()
    assert home.is_initialised()
    assert home.identity_file == home.path / "node.key"
    assert _mode(home.path) == 0o700
    assert _mode(home.identity_file) == 0o600
    assert home.identity_file.read_bytes() == made.seed
    assert home.identity().node_id == made.node_id


def test_create_refuses_to_replace_an_identity(home: Home) -> None:
    first = home.create()
    with pytest.raises(HomeError, match="already initialised"):
        home.create()
    assert home.identity().node_id == first.node_id


def test_create_makes_missing_parents(tmp_path: Path) -> None:
    home = Home(tmp_path / "a" / "b" / "home")
    home.create()
    assert home.identity_file.is_file()


def test_a_missing_identity_says_to_run_init(home: Home) -> None:
    with pytest.raises(HomeError, match="init") as info:
        home.identity()
    assert isinstance(info.value, P2PBackupError)
    assert str(home.path) in str(info.value)


def test_a_damaged_identity_is_reported_not_used(home: Home) -> None:
    home.create()
    home.identity_file.write_bytes(b"\x01" * 31)
    with pytest.raises(HomeError, match="damaged"):
        home.identity()


# ---- the owner ----------------------------------------------------------


def test_the_owner_secret_is_owner_only_and_reads_back(home: Home) -> None:
    home.create()
    assert not home.has_owner() and home.owner_master() is None
    assert home.owner_settings() == {}
    settings = {"k": 3, "n": 10, "happy": 7}
    home.write_owner(b"\x07" * 32, settings)
    assert home.has_owner()
    assert home.owner_key_file == home.path / "owner.key"
    assert _mode(home.owner_key_file) == 0o600
    assert _mode(home.owner_settings_file) == 0o600
    assert home.owner_master() == b"\x07" * 32
    assert home.owner_settings() == settings


def test_a_second_owner_key_is_refused(home: Home) -> None:
    home.create()
    home.write_owner(b"\x07" * 32, {"k": 3})
    with pytest.raises(HomeError, match="already holds an owner key"):
        home.write_owner(b"\x08" * 32, {"k": 4})
    assert home.owner_master() == b"\x07" * 32
    assert home.owner_settings() == {"k": 3}


def test_a_damaged_owner_key_is_reported(home: Home) -> None:
    home.create()
    home.write_owner(b"\x07" * 32, {})
    home.owner_key_file.write_bytes(b"\x07" * 33)
    with pytest.raises(HomeError, match="damaged"):
        home.owner_master()


def test_owner_settings_not_an_object_read_as_empty_and_bad_json_is_reported(home: Home) -> None:
    home.create()
    home.owner_settings_file.write_text("[1, 2]")
    assert home.owner_settings() == {}
    home.owner_settings_file.write_text("{not json")
    with pytest.raises(HomeError, match="not valid JSON"):
        home.owner_settings()


def test_the_owner_files_have_fixed_names(home: Home) -> None:
    assert home.owner_settings_file == home.path / "owner.json"
    assert home.catalog_file == home.path / "catalog.sqlite3"
    assert home.shares_dir == home.path / "shares"


# ---- the running peer's state ---------------------------------------------


def test_state_round_trips_and_is_owner_only(home: Home) -> None:
    home.create()
    assert home.read_state() is None
    state = {"listen": "127.0.0.1:7400", "pid": 1234, "nested": {"a": [1, 2]}}
    home.write_state(state)
    assert home.state_file == home.path / "peer.json"
    assert home.read_state() == state
    assert _mode(home.state_file) == 0o600


def test_state_that_is_damaged_or_not_an_object_reads_as_none(home: Home) -> None:
    home.create()
    home.state_file.write_text("{half")
    assert home.read_state() is None
    home.state_file.write_text('"a string"')
    assert home.read_state() is None


# ---- the home is its user's alone -------------------------------------------


def test_tighten_closes_every_folder_and_file_but_follows_no_symlink(
    home: Home, tmp_path: Path
) -> None:
    home.create()
    outside = tmp_path / "outside.txt"
    outside.write_text("not the peer's")
    outside.chmod(0o644)
    (home.path / "link").symlink_to(outside)
    nested = home.path / "shares" / "ab"
    nested.mkdir(parents=True)
    (nested / "old-share").write_bytes(b"x")
    for path in (home.path, home.path / "shares", nested):
        path.chmod(0o755)
    for path in (nested / "old-share", home.identity_file):
        path.chmod(0o644)
    home.tighten()
    assert [_mode(p) for p in (home.path, home.path / "shares", nested)] == [0o700] * 3
    assert _mode(nested / "old-share") == _mode(home.identity_file) == 0o600
    assert _mode(outside) == 0o644


def test_preparing_to_serve_a_missing_home_leaves_nothing_behind(tmp_path: Path) -> None:
    missing = Home(tmp_path / "never-initialised")
    missing.prepare_to_serve()
    assert not missing.path.exists()
    with pytest.raises(HomeError, match="init"):
        missing.identity()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root; CI is root")
def test_a_home_another_user_owns_is_refused(home: Home) -> None:
    home.create()
    os.chown(home.path, 65534, 65534)
    home.path.chmod(0o755)
    with pytest.raises(HomeError, match="belongs to uid 65534"):
        home.prepare_to_serve()
    assert _mode(home.path) == 0o755
