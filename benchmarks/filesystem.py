"""Which filesystem a benchmark run writes to, and whether it keeps a journal.

A restore creates every file, and how fast a kernel creates files depends on
the filesystem more than on anything a restore does: ext4 without a journal
(some cloud images) scans past every inode freed in the last one to six
minutes before it hands out a new one, so a restore shortly after a large
delete can take ten times longer than one after a quiet spell. The report
names the filesystem so a slow restore can be read for what it is.

A filesystem in an image file on a loop device (a journaled ext4 where the
machine's own has none) copies every write twice, into its own page cache and
into the image file's, unless the loop device does direct I/O (`losetup
--direct-io=on`): a backup writing its data 3.3 times pays for that more than
a tool writing it once. The report says which it was.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Filesystem:
    mount_point: str
    fstype: str
    source: str
    journal: bool | None  # None: not ext4, or unknown
    loop_direct_io: bool | None = None  # None: not on a loop device, or unknown

    def describe(self) -> str:
        text = f"{self.fstype} on {self.source} at {self.mount_point}"
        if self.journal is False:
            text += ", no journal: creating files slows for minutes after a large delete"
        elif self.journal:
            text += ", with a journal"
        if self.loop_direct_io:
            text += "; loop device with direct I/O"
        elif self.loop_direct_io is False:
            text += (
                "; loop device without direct I/O: each write is copied into the image"
                " file's page cache too (losetup --direct-io=on)"
            )
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "mount_point": self.mount_point,
            "fstype": self.fstype,
            "source": self.source,
            "journal": self.journal,
            "loop_direct_io": self.loop_direct_io,
        }


def filesystem_of(path: Path) -> Filesystem | None:
    """The mount holding `path`, from /proc/self/mountinfo; None where there is none."""
    target = os.path.realpath(path)
    best: Filesystem | None = None
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        mount_point = fields[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if not inside or (best is not None and len(mount_point) < len(best.mount_point)):
            continue
        fstype, source = fields[dash + 1], fields[dash + 2]
        best = Filesystem(
            mount_point, fstype, source, _journal(fstype, source), _loop_direct_io(source)
        )
    return best


def _journal(fstype: str, source: str) -> bool | None:
    if fstype != "ext4":
        return None
    # jbd2 lists each journal it runs as <device>-<journal inode>.
    return bool(glob.glob(f"/proc/fs/jbd2/{os.path.basename(source)}-*"))


def _loop_direct_io(source: str, sys_block: Path = Path("/sys/block")) -> bool | None:
    """Whether the loop device `source` reads and writes its image with direct I/O."""
    name = os.path.basename(source)
    if not name.startswith("loop"):
        return None
    try:
        return (sys_block / name / "loop" / "dio").read_text().strip() == "1"
    except OSError:
        return None
