"""The bench names the filesystem it ran on, and a loop device's direct I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.filesystem import Filesystem, _loop_direct_io


@pytest.mark.parametrize(("dio", "said"), [("1\n", True), ("0\n", False)])
def test_a_loop_devices_direct_io_is_read_from_sysfs(tmp_path: Path, dio: str, said: bool) -> None:
    (tmp_path / "loop3" / "loop").mkdir(parents=True)
    (tmp_path / "loop3" / "loop" / "dio").write_text(dio)
    assert _loop_direct_io("/dev/loop3", tmp_path) is said
    assert _loop_direct_io("/dev/vda", tmp_path) is None
    assert _loop_direct_io("/dev/loop4", tmp_path) is None  # no such device: unknown


def test_a_loop_device_without_direct_io_is_named_as_such() -> None:
    without = Filesystem("/mnt/x", "ext4", "/dev/loop0", True, loop_direct_io=False)
    assert "without direct I/O" in without.describe()
    with_dio = Filesystem("/mnt/x", "ext4", "/dev/loop0", True, loop_direct_io=True)
    assert with_dio.describe().endswith("loop device with direct I/O")
    assert "loop device" not in Filesystem("/", "ext4", "/dev/vda", False).describe()
