"""Folders to back up in the multi-process tests: every kind of entry a backup must keep."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

BIG_FILE = "big/video.bin"
# Four packs' worth (packs gather ~4 MiB): the big file spans several packs, as a video
# would; a bigger one adds only more of the same, and big files have their own test.
BIG_BYTES = 16 * 2**20


def make_tree(root: Path, *, files: int = 1100, big_bytes: int = BIG_BYTES, seed: int = 7) -> int:
    """Write the tree; returns how many regular files it holds."""
    rng = random.Random(seed)
    names = ["café", "naïve ☃", "Zürich", "東京", "emoji 🎉", "plain"]
    made = 0
    for i in range(files):
        folder = root / names[i % len(names)] / f"d{i % 17:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{names[(i // 7) % len(names)]}-{i:04d}.txt"
        size = 0 if i % 50 == 0 else rng.randrange(1, 12_000)
        path.write_bytes(rng.randbytes(size))
        os.chmod(path, 0o600 if i % 3 == 0 else 0o644)
        os.utime(
            path,
            ns=(
                1_600_000_000_000_000_000 + i * 1_000_123,
                1_600_000_000_000_000_000 + i * 1_000_123,
            ),
        )
        made += 1
    (root / "big").mkdir()
    big = root / BIG_FILE
    with big.open("wb") as handle:
        remaining = big_bytes
        while remaining:
            piece = min(remaining, 4 * 2**20)
            handle.write(rng.randbytes(piece))
            remaining -= piece
    os.chmod(big, 0o640)
    made += 1
    script = root / "plain" / "run.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    os.chmod(script, 0o755)
    made += 1
    (root / "empty" / "nested" / "deeper").mkdir(parents=True)
    (root / "empty-top").mkdir()
    os.symlink("plain/run.sh", root / "link-to-script")
    os.symlink("does/not/exist", root / "dangling")
    return made


def change_some(root: Path, fraction: float, seed: int = 11) -> list[Path]:
    """Rewrite a fraction of the small files; returns the changed ones."""
    rng = random.Random(seed)
    candidates = sorted(p for p in root.rglob("*.txt") if p.stat().st_size > 0)
    chosen = rng.sample(candidates, max(1, int(len(candidates) * fraction)))
    for path in chosen:
        path.write_bytes(rng.randbytes(rng.randrange(1, 12_000)))
    return chosen


def wait_until_settled(root: Path, racy_seconds: float) -> None:
    """Return once every entry under `root` was last changed more than `racy_seconds` ago.

    A backup does not remember files changed that recently before it began (their
    change and its scan may share a tick of the file system's clock), so a test that
    counts what a second run skips starts its first run only then. Change times cannot
    be set back, so this waits for the clock to pass the newest one."""
    states = [entry.lstat() for entry in [root, *root.rglob("*")]]
    newest_ns = max(max(state.st_mtime_ns, state.st_ctime_ns) for state in states)
    settled_ns = newest_ns + int(racy_seconds * 1_000_000_000)
    while (now_ns := time.time_ns()) <= settled_ns:
        time.sleep((settled_ns - now_ns) / 1_000_000_000 + 0.01)


def random_files(root: Path, count: int, size: int, rng: random.Random) -> Path:
    """`count` files of `size` incompressible bytes from `rng`, in a new folder `root`."""
    root.mkdir()
    for i in range(count):
        (root / f"file{i}.bin").write_bytes(rng.randbytes(size))
    return root
