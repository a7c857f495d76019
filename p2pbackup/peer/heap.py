"""Keep the C heap's freed pages in the process instead of handing them back.

A peer moves shares and packs of one to four MiB: each is received, decrypted,
decoded, hashed and written, and every step makes a new buffer of that size.
glibc serves such buffers with fresh pages (mmap, or heap it just trimmed), and
on a virtual machine the first touch of each 4 KiB page is a fault: copying a
1.4 MB share cost 1.3 ms, against 0.06 ms into pages already mapped. Raising
the mmap and trim thresholds keeps big buffers on the heap and the heap's free
top mapped, up to `TRIM_BYTES`, so the next share reuses the same pages.

Kept on the heap, those buffers must also stay in one heap: glibc gives each
thread that allocates an arena of its own, and the worker threads that code and
hash shares left buffers in up to eight of them, each holding its freed pages.
A 200 MB backup grew its owner's peer to 270 MB that way, a restore after it to
310 MB; with one arena the same backup peaks at 180 MB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# From glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

# Above the biggest frame (8 MiB) and pack, so none of them is mmapped on its own.
MMAP_BYTES = 16 * 1024 * 1024
# A free heap top above this is returned to the system at once. Above what a big
# backup's owner holds (about 150 MiB of packs, shares and frames): with 64 MiB, the
# packs placed together freed their shares together, the top was trimmed, and the
# next packs faulted it back in, up to three times the heap's size per 200 MB backup.
# `give_back_freed_pages` returns the rest once a job is over (decision 0069).
TRIM_BYTES = 512 * 1024 * 1024
# What an idle peer keeps of its free heap top after a job, warm for the next one.
IDLE_TOP_BYTES = 64 * 1024 * 1024
# Worker threads allocate from the main heap too (their few at once contend little).
ARENAS = 1


def keep_freed_pages() -> bool:
    """Set the thresholds where glibc's `mallopt` exists; whether it did."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = (
        bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES))
        and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
        and bool(mallopt(M_ARENA_MAX, ARENAS))
    )
    if not done:
        log.debug("mallopt refused the heap thresholds; keeping the defaults")
    return done


def give_back_freed_pages() -> bool:
    """Return the heap's free pages to the system (glibc's `malloc_trim`), all but
    `IDLE_TOP_BYTES` at its top: what a peer does once a backup or restore is over, so
    an idle peer keeps no more than it did before jobs kept their heap. Whether it
    could."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    trim(IDLE_TOP_BYTES)
    return True
