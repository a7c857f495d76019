"""Folders to back up in the multi-process tests: every kind of entry a backup must keep."""

from __future__ import annotations

import os
import random
from pathlib import Path

BIG_FILE = "big/video.bin"


def make_tree(root: Path, *, files: int = 1100, big_bytes: int = 50 * 2**20, seed: int = 7) -> int:
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
