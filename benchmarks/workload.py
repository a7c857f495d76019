"""The data every tool backs up: the tree, one big incompressible file, and the tree
with 1% of its files changed, all inside the run folder.

Copying the tree into the run folder does two things: every tool reads the
very same path on the very same filesystem, and the 1% change can be made
(and undone) without touching the machine's own files. The changed files are
picked from a seeded generator over the sorted file list, so every run and
every tool sees the same change; each is rewritten in part, in place, as an
editor would save it, with a new modification time.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.dataset import Dataset, scan

BIG_BYTES = 200_000_000  # about the size of a video or a small disk image
CHANGED_FRACTION = 0.01
SEED = 19
EDIT_MAX = 64 * 1024  # bytes rewritten in one changed file, at most
PIECE = 8 << 20  # the big file is generated and written in pieces of this size


@dataclass
class Original:
    """What one changed file held before, to put it back."""

    path: Path
    offset: int
    data: bytes
    size: int
    times_ns: tuple[int, int]  # atime, mtime


@dataclass
class Workload:
    """The two datasets in the run folder, and the 1% change's state."""

    folder: Path  # the run folder; every tool works relative to it
    tree: Dataset
    big: Dataset
    changed: list[Path] = field(default_factory=list)  # the files the 1% change edits
    _originals: list[Original] = field(default_factory=list)

    def change(self, round_no: int) -> int:
        """Rewrite part of each chosen file (different bytes each round); bytes written."""
        assert not self._originals, "undo the last change first"
        rng = random.Random(f"{SEED}-{round_no}")
        written = 0
        for path in self.changed:
            original = _edit(path, rng)
            self._originals.append(original)
            written += len(original.data) or 1
        return written

    def undo(self) -> None:
        """Put the changed files back as they were, times included."""
        for original in reversed(self._originals):
            with open(original.path, "r+b") as f:
                f.seek(original.offset)
                f.write(original.data)
                f.truncate(original.size)
            os.utime(original.path, ns=original.times_ns)
        self._originals.clear()

    def as_dict(self) -> dict[str, object]:
        return {
            "tree": self.tree.as_dict(),
            "big": self.big.as_dict(),
            "changed_files": len(self.changed),
            "changed_fraction": CHANGED_FRACTION,
            "seed": SEED,
        }


def regular_files(root: Path) -> list[Path]:
    """Every regular file under `root`, sorted by path, links not followed."""
    found: list[Path] = []
    for dirpath, _, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            path = Path(dirpath, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                found.append(path)
    return sorted(found)


def pick_changed(
    files: list[Path], fraction: float = CHANGED_FRACTION, seed: int = SEED
) -> list[Path]:
    """`fraction` of `files` (at least one), the same ones for the same list and seed."""
    if not files:
        return []
    count = max(1, round(len(files) * fraction))
    return sorted(random.Random(seed).sample(sorted(files), count))


def _edit(path: Path, rng: random.Random) -> Original:
    """Overwrite up to a quarter of the file (at most `EDIT_MAX` bytes) from its middle;
    an empty file gets a line. The write itself sets a new modification time."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        if st.st_size == 0:
            f.write(b"// edited\n")
            return Original(path, 0, b"", 0, (st.st_atime_ns, st.st_mtime_ns))
        length = max(1, min(EDIT_MAX, st.st_size // 4))
        offset = (st.st_size - length) // 2
        f.seek(offset)
        before = f.read(length)
        f.seek(offset)
        f.write(rng.randbytes(length))
    return Original(path, offset, before, st.st_size, (st.st_atime_ns, st.st_mtime_ns))


def write_big(path: Path, size: int = BIG_BYTES, seed: int = SEED) -> None:
    """`size` random bytes from a seeded generator: incompressible, the same every run."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            piece = min(PIECE, left)
            f.write(rng.randbytes(piece))
            left -= piece
        f.flush()
        os.fsync(f.fileno())


def prepare(source: Dataset, folder: Path, big_bytes: int = BIG_BYTES) -> Workload:
    """Copy the tree and write the big file into `folder`; choose the 1% to change."""
    tree_root = folder / "tree"
    if len(source.roots) == 1:
        shutil.copytree(source.roots[0], tree_root, symlinks=True)
    else:
        for root in source.roots:
            shutil.copytree(root, tree_root / root.name, symlinks=True)
    write_big(folder / "big" / "big.bin", big_bytes)
    tree = scan((tree_root,), f"{source.name} (copied into the run folder)")
    big = scan((folder / "big",), f"one file of {big_bytes / 1e6:.0f} MB of random bytes")
    return Workload(folder, tree, big, pick_changed(regular_files(tree_root)))
