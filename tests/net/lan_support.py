"""A LAN discovery for meetings tests on the simulated network."""

from __future__ import annotations

import trio


class Silent:
    """A discovery that finds nothing by itself: the test hands findings in."""

    def __init__(self, *args: object) -> None:
        pass

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()
