"""The awkward tree of issue 17, and what a restore of it must reproduce.

Hard links (a group of three in two folders, a group whose first path lies
outside a subset), a sparse file, a FIFO, a unix socket, a device node (as
root), extended attributes with ACLs among them; backed up through a symlink
to its folder.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any

from tests.backup.fs import BASE_NS, write

IS_ROOT = os.geteuid() == 0
SPARSE_SIZE = 1024**3
SMALL_SPARSE_SIZE = 1024**2  # where the sparse file is not what a test is about


def sparse_data(size: int) -> tuple[tuple[int, bytes], ...]:
    """What the sparse file holds between its holes: (offset, bytes)."""
    return ((0, b"head"), (4096 * 10 + 3, b"middle"), (size - 5, b"tail!"))


# Linux's binary form of a POSIX ACL (include/uapi/linux/posix_acl_xattr.h): a version,
# then (tag, permissions, id) entries sorted by tag and id.
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_NO_ID = 0xFFFFFFFF


def posix_acl(*entries: tuple[int, int, int]) -> bytes:
    return struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)


# rw- for the owner, r-- for uid 4242, r-- for the group and the mask, nothing for others.
ACL = posix_acl(
    (_USER_OBJ, 6, _NO_ID), (_USER, 4, 4242), (_GROUP_OBJ, 4, _NO_ID), (_MASK, 4, _NO_ID),
    (_OTHER, 0, _NO_ID),
)  # fmt: skip


def xattr_support(folder: Path) -> tuple[bool, bool]:
    """Whether `folder`'s file system takes user.* attributes, and POSIX ACLs."""
    probe = folder / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
        user = True
    except OSError:
        user = False
    try:
        os.setxattr(probe, "system.posix_acl_access", ACL)
        acl = True
    except OSError:
        acl = False
    probe.unlink()
    return user, acl


def make_socket(path: Path) -> None:
    """A unix socket file: bound where the path fits a socket address, else made."""
    if len(os.fsencode(path)) < 100:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(os.fspath(path))
    else:
        os.mknod(path, stat.S_IFSOCK | 0o600)


def build(real: Path, user_xattrs: bool, acl: bool, sparse_size: int) -> None:
    """The awkward tree. `real` is backed up through a symlink to it."""
    real.mkdir()
    for name in ("d1", "d2", "a-out", "inc", "specials"):
        (real / name).mkdir()
    ns = iter(range(BASE_NS, BASE_NS + 10**9, 1_000_003))
    # A group of three links in two folders, and a group partly outside `inc`: its
    # first path in walk order (a-out) is not included in the subset restore.
    write(real / "d1" / "h1", b"three links\n" * 100, mode=0o640, mtime_ns=next(ns))
    os.link(real / "d1" / "h1", real / "d1" / "h2")
    os.link(real / "d1" / "h1", real / "d2" / "h3")
    write(real / "a-out" / "y", b"partly outside", mode=0o604, mtime_ns=next(ns))
    os.link(real / "a-out" / "y", real / "inc" / "x1")
    os.link(real / "a-out" / "y", real / "inc" / "x2")
    write(real / "inc" / "plain", b"plain", mtime_ns=next(ns))
    with open(real / "sparse.img", "wb") as handle:
        for offset, data in sparse_data(sparse_size):
            handle.seek(offset)
            handle.write(data)
        handle.truncate(sparse_size)
    os.utime(real / "sparse.img", ns=(next(ns), next(ns)))
    specials = real / "specials"
    os.mkfifo(specials / "fifo", 0o640)
    make_socket(specials / "sock")
    if IS_ROOT:
        os.mknod(specials / "null", stat.S_IFCHR | 0o620, os.makedev(1, 3))
        os.link(specials / "fifo", specials / "fifo-link")
        # A trusted.* attribute is set on a FIFO as root only; user.* on none.
        os.setxattr(specials / "fifo", "trusted.kind", b"fifo", follow_symlinks=False)
    os.symlink("../d1/h1", specials / "link-inside")
    write(real / "attrs.txt", b"with attributes", mode=0o600, mtime_ns=next(ns))
    if user_xattrs:
        os.setxattr(real / "attrs.txt", "user.comment", b"kept")
        os.setxattr(real / "attrs.txt", "user.empty", b"")
        os.setxattr(real / "d2", "user.folder", b"\x00\xffbinary")
        os.chmod(real / "attrs.txt", 0o400)  # an attribute set as the mode forbids it
    if acl:
        write(real / "acl.txt", b"with an acl", mtime_ns=next(ns))
        os.setxattr(real / "acl.txt", "system.posix_acl_access", ACL)
        os.setxattr(real / "d1", "system.posix_acl_default", ACL)
    for path in (specials / "fifo", specials / "sock", specials / "link-inside"):
        stamp = next(ns)
        os.utime(path, ns=(stamp, stamp), follow_symlinks=False)
    if IS_ROOT:
        os.utime(specials / "null", ns=(next(ns), next(ns)))
    for folder in sorted(real.rglob("*"), key=lambda p: -len(p.parts)):
        if folder.is_dir() and not folder.is_symlink():
            stamp = next(ns)
            os.utime(folder, ns=(stamp, stamp))
    os.utime(real, ns=(next(ns), next(ns)))


def stat_tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """What the acceptance compares, by path under `root` (itself included as "."):
    type, mode, size, mtime, link count, device number, extended attributes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames] if dirpath == str(root) else dirnames + filenames:
            path = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(path)
            names = os.listxattr(path, follow_symlinks=False)
            xattrs = {n: os.getxattr(path, n, follow_symlinks=False) for n in sorted(names)}
            out[os.path.relpath(path, root)] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_size,
                st.st_mtime_ns,
                st.st_nlink,
                st.st_rdev,
                xattrs,
            )
    return out


def sparse_content_matches(path: Path, size: int) -> bool:
    """Its data where it was written, and zeros in one hole."""
    with open(path, "rb") as handle:
        for offset, data in sparse_data(size):
            handle.seek(offset)
            if handle.read(len(data)) != data:
                return False
        handle.seek(size // 2)
        return handle.read(4096) == bytes(4096)


Built = tuple[Path, Path, tuple[bool, bool]]


def built(tmp_path: Path, sparse_size: int = SMALL_SPARSE_SIZE) -> Built:
    """(the real folder, the symlink to it that is backed up, (user xattrs, ACLs))."""
    support = xattr_support(tmp_path)
    real = tmp_path / "real"
    build(real, *support, sparse_size)
    link = tmp_path / "docs"
    os.symlink(real, link)
    return real, link, support
