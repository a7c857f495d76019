"""A peer's home directory: its keys, its control socket, its state.

`--home` or `P2PBACKUP_HOME` picks the directory, else the platform's data
dir, so several peers can share one machine. The home is its user's alone:
folders 0700 and files 0600, tightened at `init` and `serve` whatever an older
version or a copy left, since it holds the keys and a catalog of every path
backed up. Secrets are written atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from p2pbackup.base.files import write_atomically
from p2pbackup.errors import P2PBackupError
from p2pbackup.peer.private import claim_dir, close_tree, is_private_dir

if TYPE_CHECKING:  # imported where used: a command that only asks the running peer
    from p2pbackup.crypto.identity import Identity  # loads no cipher library

ENV_HOME = "P2PBACKUP_HOME"
_SOCKET_PATH_MAX = 100  # sockaddr_un allows 108 bytes; keep a margin


class HomeError(P2PBackupError):
    """The home directory is missing, not initialised, or already initialised."""


@dataclass(frozen=True)
class Home:
    path: Path

    @classmethod
    def resolve(cls, option: str | None) -> Home:
        chosen = option or os.environ.get(ENV_HOME) or platformdirs.user_data_dir("p2pbackup")
        return cls(Path(chosen).expanduser().absolute())

    @property
    def identity_file(self) -> Path:
        return self.path / "node.key"

    @property
    def state_file(self) -> Path:
        return self.path / "peer.json"

    @property
    def control_socket(self) -> Path:
        """Inside the home unless the path is too long for a Unix socket; then in this
        user's own runtime folder under a name the home's path gives, so the CLI finds
        it where the peer put it. Never straight in a shared folder: another user
        could bind the name first (decision 0018)."""
        inside = self.path / "control.sock"
        if _fits(inside):
            return inside
        digest = hashlib.blake2b(os.fsencode(self.path), digest_size=10).hexdigest()
        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        if os.path.isabs(runtime) and is_private_dir(Path(runtime)):
            candidate = Path(runtime) / f"p2pbackup-{digest}.sock"
            if _fits(candidate):
                return candidate
        return user_temp_dir() / f"{digest}.sock"

    def is_initialised(self) -> bool:
        return self.identity_file.exists()

    def create(self, identity: Identity | None = None) -> Identity:
        """Make the directory and a node identity (fresh unless given); refuses to
        overwrite one."""
        if self.is_initialised():
            raise HomeError(f"{self.path} is already initialised (found {self.identity_file.name})")
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.tighten()
        from p2pbackup.crypto.identity import Identity

        identity = identity or Identity.generate()
        write_atomically(self.identity_file, identity.seed)
        return identity

    def tighten(self) -> None:
        """Close an existing home to every other user, down to its last file; a home
        another user owns is refused, as its owner could change anything in it."""
        try:
            owner = self.path.stat().st_uid
        except FileNotFoundError:
            return  # nothing to close; `identity` says what to do
        if owner != os.geteuid():
            raise HomeError(f"{self.path} belongs to uid {owner}; run the peer as that user")
        close_tree(self.path)

    def prepare_to_serve(self) -> None:
        """Tighten the home and claim the control socket's folder, before anything
        starts: a folder another user made first is refused here, in one line."""
        if not self.path.exists():
            return  # `identity` says to run init; no empty home is left behind
        self.tighten()
        claim_dir(self.control_socket.parent)

    @property
    def maintenance_file(self) -> Path:
        """What the peer's maintenance keeps across restarts (decision 0030)."""
        return self.path / "maintenance.cbor"

    @property
    def serve_lock(self) -> Path:
        return self.path / "serve.lock"

    def claim(self) -> ServeClaim:
        """This process serves the home: refused in one line while another peer does.

        The claim is an `flock`, which the kernel drops with its process however that
        ends; so a state file or control socket found once it is ours was left by a
        peer that was killed, and both are removed before anything else starts."""
        fd = os.open(self.serve_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HomeError(self._already_served()) from None
        self.state_file.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if self.control_socket.is_socket():
                self.control_socket.unlink()
        return ServeClaim(fd)

    def _already_served(self) -> str:
        state = self.read_state() or {}
        known = [
            f"{label} {state[key]}"
            for key, label in (("pid", "pid"), ("listen", "listening on"))
            if key in state
        ]
        running = f" ({', '.join(known)})" if known else ""
        return f"a peer is already running for {self.path}{running}; stop it first"

    def identity(self) -> Identity:
        from p2pbackup.crypto.identity import Identity

        seed = _secret(self.identity_file)
        if seed is None:
            raise HomeError(
                f"{self.path} has no peer identity; run `p2pbackup --home {self.path} init` first"
            )
        return Identity.from_seed(seed)

    # ---- the owner --------------------------------------------------------

    @property
    def owner_key_file(self) -> Path:
        return self.path / "owner.key"

    @property
    def owner_settings_file(self) -> Path:
        return self.path / "owner.json"

    @property
    def catalog_file(self) -> Path:
        return self.path / "catalog.sqlite3"

    @property
    def records_file(self) -> Path:
        """The records this peer holds as a replica of others' (and its own) keys."""
        return self.path / "records.sqlite3"

    @property
    def own_records_file(self) -> Path:
        """The records this peer signed, which it re-publishes (decision 0025)."""
        return self.path / "own-records.sqlite3"

    @property
    def shares_dir(self) -> Path:
        return self.path / "shares"

    def has_owner(self) -> bool:
        return self.owner_key_file.exists()

    def write_owner(self, master: bytes, settings: dict[str, Any]) -> None:
        """Keep the owner's master secret (owner-only) and redundancy settings."""
        if self.has_owner():
            raise HomeError(f"{self.path} already holds an owner key")
        write_atomically(self.owner_settings_file, json.dumps(settings, indent=2).encode())
        write_atomically(self.owner_key_file, master)

    def owner_master(self) -> bytes | None:
        return _secret(self.owner_key_file)

    def owner_settings(self) -> dict[str, Any]:
        try:
            value = json.loads(self.owner_settings_file.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            raise HomeError(f"{self.owner_settings_file} is not valid JSON") from None
        return value if isinstance(value, dict) else {}

    def update_owner_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change some of the owner's settings durably (temp file, fsync, rename), keeping
        the rest; the running peer reads them again at its next backup. Returns them all."""
        if not self.has_owner():
            raise HomeError(
                f"{self.path} holds no owner key; settings belong to a home made by `init`"
            )
        settings = {**self.owner_settings(), **changes}
        write_atomically(self.owner_settings_file, json.dumps(settings, indent=2).encode())
        return settings

    # ---- the mesh --------------------------------------------------------

    @property
    def mesh_file(self) -> Path:
        """The mesh this home belongs to: its roll, certificate, invites (decision 0037)."""
        return self.path / "mesh.cbor"

    def member_identity(self) -> Identity:
        """This home's member key: the owner's, from the recovery secret, so a recovered
        owner is the same member; a home without an owner acts as its node key."""
        from p2pbackup.crypto.keys import member_identity

        master = self.owner_master()
        return member_identity(master) if master is not None else self.identity()

    def write_mesh(self, data: bytes) -> None:
        write_atomically(self.mesh_file, data)

    def read_mesh(self) -> bytes | None:
        """The mesh file's bytes; None for a home made before meshes had members."""
        try:
            return self.mesh_file.read_bytes()
        except FileNotFoundError:
            return None

    def write_state(self, state: dict[str, Any]) -> None:
        write_atomically(self.state_file, json.dumps(state, indent=2).encode())

    def read_state(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return value if isinstance(value, dict) else None


class ServeClaim:
    """The lock a serving peer holds on its home until `release` or its exit."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def user_temp_dir() -> Path:
    """The control sockets' folder when neither the home nor XDG_RUNTIME_DIR will do:
    named for the user, so the CLI finds it, and checked by whoever uses it, as another
    user may have made it first."""
    return Path(tempfile.gettempdir()) / f"p2pbackup-{os.geteuid()}"


def _fits(socket_path: Path) -> bool:
    return len(os.fsencode(socket_path)) <= _SOCKET_PATH_MAX


def _secret(path: Path) -> bytes | None:
    """The 32-byte secret kept in `path`, None if there is none; a damaged one is an error."""
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(secret) != 32:
        raise HomeError(f"{path} is damaged ({len(secret)} bytes, expected 32)")
    return secret
