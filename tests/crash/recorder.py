"""Record what a workload does to a directory, as the disk sees it.

The workload runs in a child process under strace, which logs every system call
that creates, writes, syncs, renames or removes a file (the approach of the ALICE
study: the very calls production makes, no hooks in production code). The log is
parsed into `Op`s on paths relative to the directory, with each file's writes tied
to the file itself (an inode number of our own), so a rename carries its data along.
A workload marks each acknowledgement by writing `ACK <label>` to its stdout in one
`write`, so the log shows exactly which operations came before it.

SQLite's `-shm` file is left out: it is rebuilt from the log after a reboot, and
every crash state goes without it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

STRACE = shutil.which("strace") or "/usr/bin/strace"
REPO = Path(__file__).resolve().parents[2]
# Every call that could change a file, so an unhandled one fails loudly, not silently.
CALLS = (
    "openat,open,creat,write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync,"
    "sync_file_range,rename,renameat,renameat2,unlink,unlinkat,ftruncate,truncate,"
    "mkdir,mkdirat,rmdir,lseek,close,link,linkat,symlink,symlinkat,fallocate,"
    "dup,dup2,dup3,msync,syncfs,sync"
)
CHANGES = frozenset({"create", "mkdir", "rename", "unlink", "rmdir", "write", "truncate"})
DIRECTORY_OPS = frozenset({"create", "mkdir", "rename", "unlink", "rmdir"})

_HEX = r"(?:\\x[0-9a-f]{2})*"
_LINE = re.compile(rf"^(\w+)\((.*)\) += (-?\d+)(?:<({_HEX})>)?(?: .*)?$")
_TOKEN = re.compile(rf'\s*(?:"({_HEX})"|(-?\d+|AT_FDCWD)<({_HEX})>|([^,]+))')


class UnsupportedCall(AssertionError):
    """The workload made a call on the directory that the replay does not model."""


@dataclass(frozen=True)
class Op:
    """One step the disk took: a change, a sync, or a workload's acknowledgement.

    `path` is relative to the recorded directory (the source, for a rename);
    `ino` names the file a write, truncate or fsync acts on."""

    kind: str  # create mkdir rename unlink rmdir write truncate fsync dirsync ack
    path: str = ""
    target: str = ""  # a rename's destination
    ino: int = -1
    offset: int = 0  # a write's position, a truncate's size
    data: bytes = b""

    def parents(self) -> tuple[str, ...]:
        """The directories whose sync makes this directory change durable."""
        paths = (self.path, self.target) if self.kind == "rename" else (self.path,)
        return tuple(sorted({os.path.dirname(p) for p in paths}))


class Token(NamedTuple):
    """One strace argument: a string ("str"), an fd with its path ("fd") or anything
    else ("raw", its text)."""

    kind: str
    value: bytes
    fd: int = -1


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace("\\x", ""))


@dataclass
class _Fd:
    path: str
    ino: int | None  # None: a directory, or a file left out (the -shm)
    offset: int = 0


@dataclass
class _Parser:
    """Turns strace lines into `Op`s, tracking names, open files and their offsets."""

    root: str
    names: dict[str, int]
    dirs: set[str]
    fds: dict[int, _Fd] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    next_ino: int = 0

    def rel(self, absolute: str) -> str | None:
        path = os.path.normpath(absolute)
        if path == self.root:
            return ""
        if path.startswith(self.root + "/"):
            return path[len(self.root) + 1 :]
        return None

    def resolve(self, base: str | None, name: bytes) -> str | None:
        """A path argument relative to the directory of `base` (AT_FDCWD or an fd)."""
        text = os.fsdecode(name)
        if not text.startswith("/"):
            assert base is not None, "a relative path needs a directory"
            text = os.path.join(base, text)
        return self.rel(text)

    def line(self, raw: str) -> None:
        match = _LINE.match(raw)
        if match is None:
            if raw.startswith(("+++", "---")) or not raw.strip():
                return
            raise UnsupportedCall(f"cannot parse strace line: {raw[:200]}")
        call, args, ret = match.group(1), match.group(2), int(match.group(3))
        if ret < 0:
            return
        tokens = _tokens(args)
        handler = getattr(self, f"_{call}", None)
        if handler is None:
            self._unsupported(call, tokens, raw)
            return
        handler(tokens, ret, match.group(4))

    def _unsupported(self, call: str, tokens: list[Token], raw: str) -> None:
        for token in tokens:
            touches = (token.kind == "fd" and token.fd in self.fds) or (
                token.kind == "str" and self.rel(os.fsdecode(token.value)) is not None
            )
            if touches:
                raise UnsupportedCall(f"{call} on the recorded directory: {raw[:200]}")

    def emit(self, op: Op) -> None:
        self.ops.append(op)

    # -- opening and closing ---------------------------------------------------

    def _openat(self, tokens: list[Token], ret: int, resolved: str | None) -> None:
        flags = tokens[2].value.decode()
        assert resolved is not None, "strace -y gives every returned fd its path"
        rel = self.rel(os.fsdecode(_unhex(resolved)))
        self.fds.pop(ret, None)
        if rel is None:
            return
        if rel.endswith("-shm"):
            self.fds[ret] = _Fd(rel, None)
            return
        if rel in self.dirs:
            self.fds[ret] = _Fd(rel, None)
            return
        if "O_APPEND" in flags:
            raise UnsupportedCall(f"O_APPEND on {rel}")
        if rel in self.names:
            ino = self.names[rel]
            if "O_TRUNC" in flags:
                self.emit(Op("truncate", rel, ino=ino, offset=0))
        else:
            assert "O_CREAT" in flags, f"{rel} opened but never seen"
            ino = self.next_ino
            self.next_ino += 1
            self.names[rel] = ino
            self.emit(Op("create", rel, ino=ino))
        self.fds[ret] = _Fd(rel, ino)

    def _close(self, tokens: list[Token], _ret: int, _r: str | None) -> None:
        if tokens[0].kind == "fd":
            self.fds.pop(self._fd(tokens[0]), None)

    def _fd(self, token: Token) -> int:
        return token.fd

    def _file(self, token: Token) -> _Fd | None:
        """The open file a call acts on, or None when it is not in the directory."""
        if token.kind != "fd":
            return None
        return self.fds.get(self._fd(token))

    # -- data -------------------------------------------------------------------

    def _write(self, tokens: list[Token], ret: int, _r: str | None) -> None:
        data = tokens[1].value
        handle = self._file(tokens[0])
        if handle is None:
            if self._fd(tokens[0]) == 1 and data.startswith(b"ACK "):
                self.emit(Op("ack", data[4:].decode().strip()))
            return
        if handle.ino is not None:
            self.emit(
                Op("write", handle.path, ino=handle.ino, offset=handle.offset, data=data[:ret])
            )
        handle.offset += ret

    def _pwrite64(self, tokens: list[Token], ret: int, _r: str | None) -> None:
        handle = self._file(tokens[0])
        if handle is None or handle.ino is None:
            return
        data = tokens[1].value[:ret]
        self.emit(Op("write", handle.path, ino=handle.ino, offset=int(tokens[3].value), data=data))

    def _lseek(self, tokens: list[Token], ret: int, _r: str | None) -> None:
        handle = self._file(tokens[0])
        if handle is not None:
            handle.offset = ret

    def _ftruncate(self, tokens: list[Token], _ret: int, _r: str | None) -> None:
        handle = self._file(tokens[0])
        if handle is not None and handle.ino is not None:
            size = int(tokens[1].value)
            self.emit(Op("truncate", handle.path, ino=handle.ino, offset=size))

    def _fsync(self, tokens: list[Token], _ret: int, _r: str | None) -> None:
        handle = self._file(tokens[0])
        if handle is None:
            return
        if handle.ino is not None:
            self.emit(Op("fsync", handle.path, ino=handle.ino))
        elif handle.path in self.dirs:
            self.emit(Op("dirsync", handle.path))

    _fdatasync = _fsync

    # -- names ------------------------------------------------------------------

    def _base(self, token: Token) -> str | None:
        if token.kind != "fd":
            return None
        return os.fsdecode(token.value)

    def _rename_paths(self, src: str | None, dst: str | None) -> None:
        if src is None and dst is None:
            return
        if src is None or dst is None:
            raise UnsupportedCall(f"rename across the recorded directory: {src} -> {dst}")
        if src.endswith("-shm"):
            return
        if src in self.dirs:
            raise UnsupportedCall(f"directory rename {src}")
        self.names[dst] = self.names.pop(src)
        self.emit(Op("rename", src, target=dst))

    def _rename(self, tokens: list[Token], _ret: int, _r: str | None) -> None:
        cwd = os.getcwd()
        src = self.resolve(cwd, tokens[0].value)
        dst = self.resolve(cwd, tokens[1].value)
        self._rename_paths(src, dst)

    def _renameat(self, tokens: list[Token], _ret: int, _r: str | None) -> None:
        src = self.resolve(self._base(tokens[0]), tokens[1].value)
        dst = self.resolve(self._base(tokens[2]), tokens[3].value)
        self._rename_paths(src, dst)

    _renameat2 = _renameat

    def _remove(self, rel: str | None, directory: bool) -> None:
        if rel is None or rel.endswith("-shm"):
            return
        if directory:
            self.dirs.discard(rel)
            self.emit(Op("rmdir", rel))
        else:
            self.names.pop(rel, None)
            self.emit(Op("unlink", rel))

    def _unlink(self, tokens: list[Token], _ret: int, _r: str | None) -> None:
        self._remove(self.resolve(os.getcwd(), tokens[0].value), False)

    def _unlinkat(self, tokens: list[Token], _ret: int, _r: str | None) -> None:
        rel = self.resolve(self._base(tokens[0]), tokens[1].value)
        self._remove(rel, b"AT_REMOVEDIR" in tokens[2].value)

    def _rmdir(self, tokens: list[Token], _ret: int, _r: str | None) -> None:
        self._remove(self.resolve(os.getcwd(), tokens[0].value), True)

    def _made_dir(self, rel: str | None) -> None:
        if rel is not None:
            self.dirs.add(rel)
            self.emit(Op("mkdir", rel))

    def _mkdir(self, tokens: list[Token], _ret: int, _r: str | None) -> None:
        self._made_dir(self.resolve(os.getcwd(), tokens[0].value))

    def _mkdirat(self, tokens: list[Token], _ret: int, _r: str | None) -> None:
        self._made_dir(self.resolve(self._base(tokens[0]), tokens[1].value))


def _tokens(args: str) -> list[Token]:
    """strace's arguments, one `Token` each."""
    found: list[Token] = []
    for match in _TOKEN.finditer(args):
        if match.group(1) is not None:
            found.append(Token("str", _unhex(match.group(1))))
        elif match.group(2) is not None:
            number = -100 if match.group(2) == "AT_FDCWD" else int(match.group(2))
            found.append(Token("fd", _unhex(match.group(3)), number))
        elif match.group(4).strip():
            found.append(Token("raw", match.group(4).strip().encode()))
    return found


def listing(root: Path) -> tuple[dict[str, bytes], set[str]]:
    """A directory's files (bytes by relative path) and subdirectories, without `-shm`."""
    files: dict[str, bytes] = {}
    dirs: set[str] = {""}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        base = "" if rel == "." else rel
        dirs.update(os.path.join(base, d) for d in dirnames)
        for name in filenames:
            if not name.endswith("-shm"):
                files[os.path.join(base, name)] = (Path(dirpath) / name).read_bytes()
    return files, dirs


@dataclass(frozen=True)
class Recording:
    """A workload's operations, the directory it started from and the one it left."""

    ops: list[Op]
    start: dict[str, bytes]  # files by relative path
    inos: dict[str, int]  # the start's files, numbered as the ops number them
    start_dirs: set[str]
    final: dict[str, bytes]
    final_dirs: set[str]


def record(script: str, start: Path, run: Path) -> Recording:
    """Copy `start` to `run`, run `script` (Python; argv[1] is the directory) on it under
    strace, and return what it did to the disk. Raises if the workload fails."""
    shutil.copytree(start, run)
    run = Path(os.path.realpath(run))
    files, dirs = listing(run)
    log = run.parent / f"{run.name}.strace"
    command = [STRACE, "-qq", "-y", "-xx", "-s", str(1 << 26), "-o", str(log)]
    command += ["-e", f"trace={CALLS}", sys.executable, "-c", script, str(run)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    inos = {path: ino for ino, path in enumerate(sorted(files))}
    parser = _Parser(str(run), dict(inos), set(dirs), next_ino=len(inos))
    for raw in log.read_text().splitlines():
        parser.line(raw)
    final, final_dirs = listing(run)
    return Recording(parser.ops, files, inos, dirs, final, final_dirs)
