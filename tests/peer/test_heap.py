"""The heap keeps freed pages: a share-sized buffer made again and again faults once."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A child process: the thresholds are process-wide and must not leak into the tests.
_FAULTS = """
import resource, sys
from p2pbackup.peer.heap import keep_freed_pages
if sys.argv[1] == "kept" and not keep_freed_pages():
    print("unsupported"); raise SystemExit
data = bytes(1_400_000)
def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3): bytes(bytearray(data))  # let the heap grow once
before = faults()
for _ in range(50): bytes(bytearray(data))
print(faults() - before)
"""


def _faults(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_big_buffers_reuse_mapped_pages() -> None:
    kept = _faults("kept")
    if kept == "unsupported":
        pytest.skip("this C library has no mallopt")
    # 50 rounds of two 1.4 MB buffers on fresh pages fault about 34,000 times.
    assert int(kept) < 500
    assert int(_faults("default")) > 10 * max(int(kept), 100)


_THREADS = """
import ctypes, ctypes.util, sys, threading
from p2pbackup.peer.heap import keep_freed_pages
libc = ctypes.CDLL(ctypes.util.find_library("c"))
if not keep_freed_pages():
    print("unsupported"); raise SystemExit
if sys.argv[1] == "arena-per-thread":
    libc.mallopt(-8, 64)  # M_ARENA_MAX
barrier = threading.Barrier(4)
def work():
    held = [bytearray(2_000_000) for _ in range(3)]
    barrier.wait()  # all four hold their buffers at once
    del held
threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads: thread.start()
for thread in threads: thread.join()
libc.malloc_stats()  # one "Arena N:" block per heap, on standard error
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_worker_threads_share_one_heap() -> None:
    """Buffers made in worker threads (coding, hashing shares) come from one heap, not
    from an arena per thread that each keeps its freed pages: a big backup's owner grew
    to 270 MB that way."""

    def arenas(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _THREADS, mode], capture_output=True, text=True, check=True
        )
        if done.stdout.strip() == "unsupported":
            pytest.skip("this C library has no mallopt")
        return sum(line.startswith("Arena ") for line in done.stderr.splitlines())

    assert arenas("one-heap") == 1
    assert arenas("arena-per-thread") > 1


_GIVE_BACK = """
import sys
from p2pbackup.peer.heap import give_back_freed_pages, keep_freed_pages
if not keep_freed_pages():
    print("unsupported"); raise SystemExit
def resident_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 // 2**20
base = resident_mib()
held = [bytearray(2_000_000) for _ in range(60)]  # a big backup's packs and shares
del held
kept = resident_mib() - base
if sys.argv[1] == "give-back":
    give_back_freed_pages()
print(kept, resident_mib() - base)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_a_jobs_heap_is_kept_until_given_back() -> None:
    """120 MB freed at once stays mapped for the next shares (a trim of the free top
    made the next packs fault it all back in), and goes back to the system once the
    job is over, but for the 64 MiB top an idle peer keeps."""

    def resident(mode: str) -> tuple[int, int]:
        done = subprocess.run(
            [sys.executable, "-c", _GIVE_BACK, mode], capture_output=True, text=True, check=True
        )
        if done.stdout.strip() == "unsupported":
            pytest.skip("this C library has no mallopt")
        kept, after = done.stdout.split()
        return int(kept), int(after)

    kept, after = resident("keep")
    assert kept > 100 and after > 100
    kept, after = resident("give-back")
    assert kept > 100 and after < 80  # what is left: the top an idle peer keeps warm
