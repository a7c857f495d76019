"""This peer's share store on disk: content-addressed files, an SQLite index, quotas, leases."""

from p2pbackup.base.sizes import format_size, parse_size
from p2pbackup.store.contract import (
    OwnerQuotaFull,
    ShareInfo,
    ShareKey,
    ShareRejected,
    StoredShare,
    StoreFull,
    StoreLocked,
)
from p2pbackup.store.file_store import FileShareStore
from p2pbackup.store.memory import MemoryShareStore
from p2pbackup.store.quota import ShareStore

__all__ = [
    "FileShareStore",
    "MemoryShareStore",
    "OwnerQuotaFull",
    "ShareInfo",
    "ShareKey",
    "ShareRejected",
    "ShareStore",
    "StoreFull",
    "StoreLocked",
    "StoredShare",
    "format_size",
    "parse_size",
]
