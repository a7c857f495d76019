"""Only this user: the checks that keep a peer's home and control socket out of other
local users' reach.

Whoever reaches the control socket commands the peer, and whoever answers on it is
believed by the CLI; the home holds the keys and a catalog of every path backed up.
So the peer keeps both in folders only its user may enter, the server hangs up on
any other user, and the CLI talks through nothing another user could have put in
its way. Root is no exception on either side (decision 0018).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line checks its socket without importing trio
    import trio

from p2pbackup.errors import P2PBackupError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class LocalAccessError(P2PBackupError):
    """A folder or socket that should be this user's alone is not."""


def is_private_dir(path: Path) -> bool:
    """Whether `path` is a real folder (no symlink) of this user's that nobody else may enter."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0
    )


def claim_dir(path: Path) -> None:
    """Make `path` a folder only this user may enter: created 0700, or closed to others
    if it is already this user's; one another user owns (or a symlink) is refused,
    since whoever owns it can swap what is inside."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=PRIVATE_DIR)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise LocalAccessError(f"{path} is not a folder; remove it so the peer can make its own")
    if info.st_uid != os.geteuid():
        raise LocalAccessError(
            f"{path} belongs to uid {info.st_uid}, not to this user; "
            "remove it or set XDG_RUNTIME_DIR to a folder of your own"
        )
    if stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)


def check_own(path: Path, kind: str) -> None:
    """Refuse `path` unless it is this user's and nobody else may write it: a socket or
    folder another user controls could be theirs to answer on. A missing one is
    `FileNotFoundError`, for the caller to report."""
    info = os.lstat(path)
    if info.st_uid != os.geteuid():
        raise LocalAccessError(
            f"refusing the control socket: {kind} {path} belongs to uid {info.st_uid}, "
            "not to this user"
        )
    if stat.S_IMODE(info.st_mode) & 0o022:
        raise LocalAccessError(
            f"refusing the control socket: other users may write to {kind} {path}"
        )


def peer_uid(sock: socket.socket | trio.socket.SocketType) -> int | None:
    """The user id of the process at the other end of a Unix socket, None where the
    platform does not say (SO_PEERCRED is Linux's)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _PEERCRED.size))
    return int(uid)


def close_tree(root: Path) -> None:
    """Folders 0700 and everything else 0600 from `root` down, whatever an older version,
    a copy or another umask left; symlinks are not followed (their targets are not ours)."""
    _set_mode(root, PRIVATE_DIR)
    for folder, folders, files in os.walk(root):
        for name in folders:
            _set_mode(Path(folder, name), PRIVATE_DIR, follow=False)
        for name in files:
            _set_mode(Path(folder, name), PRIVATE_FILE, follow=False)


def _set_mode(path: Path, mode: int, *, follow: bool = True) -> None:
    try:
        info = os.stat(path, follow_symlinks=follow)
    except FileNotFoundError:
        return  # gone meanwhile (a temp file a write removed): nothing left to close
    if stat.S_ISLNK(info.st_mode) or stat.S_IMODE(info.st_mode) == mode:
        return
    os.chmod(path, mode)
