"""Two owners' sets under one pack id keep their memories apart."""

from __future__ import annotations

from typing import Any

from p2pbackup.maintenance.set_memory import SetsApart

PACK = b"p" * 32
OWNER, SQUATTER = b"o" * 32, b"s" * 32


def test_each_owners_memory_comes_back_for_its_own_turn_only() -> None:
    views: dict[bytes, Any] = {}
    proofs: dict[bytes, Any] = {}
    apart = SetsApart(lambda: (views, proofs))
    views[PACK], proofs[PACK] = "owner's view", "owner's proofs"
    apart.set_aside(PACK, OWNER)
    assert PACK not in views and PACK not in proofs
    views[PACK] = "squatter's view"  # the junk set's turn learns only a view
    apart.set_aside(PACK, SQUATTER)
    apart.bring_back(PACK, OWNER)
    assert views[PACK] == "owner's view" and proofs[PACK] == "owner's proofs"
    apart.set_aside(PACK, OWNER)
    apart.bring_back(PACK, SQUATTER)
    assert views[PACK] == "squatter's view" and PACK not in proofs


def test_sets_no_longer_held_are_forgotten() -> None:
    views: dict[bytes, Any] = {PACK: "view"}
    apart = SetsApart(lambda: (views,))
    apart.set_aside(PACK, OWNER)
    apart.keep_only(set())
    apart.bring_back(PACK, OWNER)
    assert PACK not in views
