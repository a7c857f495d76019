"""Which peers hold a record's copies: the nearest, spread over address blocks.

The N replicas of a record are the N peers nearest its key, except that no
address block gets a second replica while another block among the lookup's
answers has none: an adversary with b blocks then holds at most b copies
(decision 0023), where the nearest N alone would all be its own when it
grinds ids next to the key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from p2pbackup.net.contact import Contact


def spread_over_blocks(
    contacts: Sequence[Contact], count: int, block_of: Callable[[Contact], str]
) -> list[Contact]:
    """The `count` nearest of `contacts` (nearest first), one per block while blocks last."""
    firsts: list[int] = []
    others: list[int] = []
    seen: set[str] = set()
    for position, contact in enumerate(contacts):
        block = block_of(contact)
        (others if block in seen else firsts).append(position)
        seen.add(block)
    chosen = firsts[:count]
    chosen += others[: count - len(chosen)]
    return [contacts[position] for position in sorted(chosen)]
