"""Folder lists come back from the mesh: every entry is checked before a restore uses it."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.backup.tree import EntryKind, Tree, TreeEntry
from p2pbackup.errors import WireError

CID = bytes(32)

names = st.binary(min_size=1, max_size=40).filter(
    lambda n: b"/" not in n and n not in (b".", b"..")
)
chunk_lists = st.lists(
    st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 2**32)), max_size=4
)


@st.composite
def entries(draw: st.DrawFn) -> TreeEntry:
    name = draw(names)
    kind = draw(st.sampled_from([EntryKind.FILE, EntryKind.DIR, EntryKind.SYMLINK]))
    mode, mtime = draw(st.integers(0, 0o177777)), draw(st.integers(-(2**62), 2**62))
    if kind is EntryKind.FILE:
        chunks = tuple(draw(chunk_lists))
        return TreeEntry(name, kind, mode, mtime, sum(n for _, n in chunks), chunks)
    if kind is EntryKind.DIR:
        return TreeEntry(name, kind, mode, mtime, subtree=draw(st.binary(min_size=32, max_size=32)))
    return TreeEntry(name, kind, mode, mtime, target=draw(st.binary(max_size=100)))


@given(st.lists(entries(), max_size=8, unique_by=lambda e: e.name))
def test_a_tree_decodes_to_what_was_encoded(listed: list[TreeEntry]) -> None:
    tree = Tree(tuple(sorted(listed, key=lambda e: e.name)))
    assert Tree.decode(tree.encode()) == tree


def wire(**changes: Any) -> bytes:
    entry: dict[str, Any] = {
        "name": b"a.txt",
        "kind": 0,
        "mode": 0o644,
        "mtime": 1,
        "size": 5,
        "chunks": [[CID, 5]],
    }
    entry.update(changes)
    return cbor2.dumps({"v": 1, "entries": [{k: v for k, v in entry.items() if v is not ...}]})


def test_the_reference_entry_is_valid() -> None:
    (entry,) = Tree.decode(wire()).entries
    assert entry == TreeEntry(b"a.txt", EntryKind.FILE, 0o644, 1, 5, ((CID, 5),))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"extra": 1}, "unknown field 'extra'"),
        ({"mode": ...}, "missing field 'mode'"),
        ({"name": "a.txt"}, "field 'name'"),
        ({"name": b"x" * 4097}, "field 'name'"),
        ({"name": b""}, "unsafe entry name"),
        ({"name": b".."}, "unsafe entry name"),
        ({"name": b"a/b"}, "unsafe entry name"),
        ({"kind": 3}, "field 'kind'"),
        ({"kind": True}, "field 'kind'"),
        ({"mode": 0o200000}, "field 'mode'"),
        ({"mode": True}, "field 'mode'"),
        ({"mtime": 2**63}, "field 'mtime'"),
        ({"size": -1}, "field 'size'"),
        ({"size": 6}, "do not add up"),
        ({"chunks": [CID, 5]}, "chunk reference"),
        ({"chunks": [[CID[:31], 5]]}, "chunk id is 32 bytes"),
        ({"chunks": [[CID, -5]]}, "field 'chunks'"),
        ({"chunks": {"a": 1}}, "field 'chunks'"),
        ({"kind": 1, "chunks": ..., "size": 0}, "needs its subtree"),
        ({"kind": 1, "subtree": b"short"}, "field 'subtree'"),
        ({"kind": 2, "chunks": ..., "size": 0}, "needs its target"),
        ({"kind": 2, "target": "text"}, "field 'target'"),
    ],
)
def test_a_bad_entry_is_refused_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        Tree.decode(wire(**changes))


def test_a_tree_that_is_no_tree_is_refused() -> None:
    for data in (b"\xff", cbor2.dumps([1]), cbor2.dumps({"v": 3, "entries": []})):
        with pytest.raises(WireError):
            Tree.decode(data)
    twice = cbor2.dumps({"v": 1, "entries": [cbor2.loads(wire())["entries"][0]] * 2})
    with pytest.raises(WireError, match="duplicate"):
        Tree.decode(twice)
