"""A descriptor or disk error in maintenance costs one pack its round, never the
peer: before, an EMFILE raised while reading one share ended the whole loop."""

from __future__ import annotations

import errno
import random
from collections.abc import Iterator
from typing import cast

from p2pbackup.base.offload import inline
from p2pbackup.dht.node import DhtNode
from p2pbackup.maintenance.config import MaintenanceConfig
from p2pbackup.maintenance.maintainer import Maintainer
from p2pbackup.store import ShareInfo, StoredShare
from p2pbackup.store.memory import MemoryShareStore


class FailingStore(MemoryShareStore):
    """Lists two shares; reading the first fails as a process out of descriptors does."""

    def __init__(self, failing: bytes) -> None:
        super().__init__(capacity=1 << 20)
        self.failing = failing
        self.asked: list[bytes] = []

    def list_shares(self) -> Iterator[ShareInfo]:
        yield ShareInfo(self.failing, 0, 10, 1 << 40, b"\3" * 32)
        yield ShareInfo(b"\2" * 32, 0, 10, 1 << 40, b"\3" * 32)

    def get(self, pack_id: bytes, index: int, owner: bytes) -> StoredShare | None:
        self.asked.append(pack_id)
        if pack_id == self.failing:
            raise OSError(errno.EMFILE, "Too many open files")
        return None  # as if deleted meanwhile


class QuietDht:
    node_id = b"\0" * 20


async def test_an_os_error_on_one_pack_costs_that_pack_its_round() -> None:
    store = FailingStore(b"\1" * 32)
    maintainer = Maintainer(
        cast(DhtNode, QuietDht()),
        store,
        MaintenanceConfig(),
        random.Random(1),
        run_sync=inline,
        now=lambda: 1000.0,
    )
    await maintainer.round()
    await maintainer.round()
    assert maintainer.stats.rounds == 2
    assert maintainer.stats.errors == 2
    assert sorted(store.asked) == sorted([b"\1" * 32, b"\2" * 32] * 2)
