"""Version-2 folder lists: special files, hard links and extended attributes, checked
as strictly as the rest; a tree with none of them is written as version 1 was."""

from __future__ import annotations

import contextlib
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pbackup.backup.tree import (
    MAX_XATTR_VALUE,
    EntryKind,
    Tree,
    TreeEntry,
)
from p2pbackup.errors import WireError

CID = bytes(32)

names = st.binary(min_size=1, max_size=40).filter(
    lambda n: b"/" not in n and n not in (b".", b"..")
)
xattr_maps = st.dictionaries(
    st.binary(min_size=1, max_size=30).filter(lambda n: b"\0" not in n),
    st.binary(max_size=60),
    max_size=3,
)


@st.composite
def entries(draw: st.DrawFn) -> TreeEntry:
    name = draw(names)
    kind = draw(st.sampled_from(EntryKind))
    mode, mtime = draw(st.integers(0, 0o177777)), draw(st.integers(-(2**62), 2**62))
    xattrs = tuple(sorted(draw(xattr_maps).items()))
    link = 0 if kind is EntryKind.DIR else draw(st.integers(0, 2**32))
    base = TreeEntry(name, kind, mode, mtime, link=link, xattrs=xattrs)
    if kind is EntryKind.FILE:
        chunks = tuple(
            draw(
                st.lists(
                    st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 2**32)),
                    max_size=3,
                )
            )
        )
        return _with(base, size=sum(n for _, n in chunks), chunks=chunks)
    if kind is EntryKind.DIR:
        return _with(base, subtree=draw(st.binary(min_size=32, max_size=32)))
    if kind is EntryKind.SYMLINK:
        return _with(base, target=draw(st.binary(max_size=100)))
    if kind in (EntryKind.CHAR_DEVICE, EntryKind.BLOCK_DEVICE):
        part = st.integers(0, 2**32 - 1)
        return _with(base, rdev=(draw(part), draw(part)))
    return base


def _with(entry: TreeEntry, **changes: Any) -> TreeEntry:
    fields = {**entry.__dict__, **changes}
    return TreeEntry(**fields)


trees = st.lists(entries(), max_size=8, unique_by=lambda e: e.name).map(
    lambda listed: Tree(tuple(sorted(listed, key=lambda e: e.name)))
)


@given(trees)
def test_a_v2_tree_decodes_to_what_was_encoded(tree: Tree) -> None:
    data = tree.encode()
    assert Tree.decode(data) == tree
    version = cbor2.loads(data)["v"]
    assert version == (1 if all(e.is_v1 for e in tree.entries) else 2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees, st.data())
def test_mutated_trees_raise_only_wire_errors(tree: Tree, data: st.DataObject) -> None:
    encoded = bytearray(tree.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(len(encoded) - 1, 0)))
        if op == "flip" and encoded:
            encoded[at] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del encoded[at:]
        else:
            encoded[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    with contextlib.suppress(WireError):
        Tree.decode(bytes(encoded))


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=8) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.binary(max_size=4) | st.integers(), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees, st.data())
def test_a_field_given_any_value_raises_only_wire_errors(tree: Tree, data: st.DataObject) -> None:
    """Structured damage: a field of one entry replaced by any CBOR value, or added."""
    raw = cbor2.loads(tree.encode())
    if not raw["entries"]:
        return
    entry = data.draw(st.sampled_from(raw["entries"]))
    field = data.draw(st.sampled_from(["rdev", "link", "xattrs", "kind", "size", "target"]))
    entry[field] = data.draw(cbor_values)
    raw["v"] = data.draw(st.sampled_from([1, 2]))
    with contextlib.suppress(WireError):
        Tree.decode(cbor2.dumps(raw))


def test_a_tree_with_nothing_new_is_written_byte_for_byte_as_version_1_was() -> None:
    """Folders unchanged since an upgrade must dedup against what the old version
    saved; these bytes are what version 1 wrote for this tree."""
    tree = Tree(
        (
            TreeEntry(
                b"a.txt",
                EntryKind.FILE,
                0o644,
                1_600_000_000_000_000_001,
                5,
                ((bytes(range(32)), 5),),
            ),
            TreeEntry(b"dir", EntryKind.DIR, 0o755, -3, subtree=bytes(32)),
            TreeEntry(b"ln", EntryKind.SYMLINK, 0o777, 7, target=b"a.txt"),
        )
    )
    assert tree.encode().hex() == (
        "a261760167656e747269657383a6646e616d6545612e747874646b696e6400646d6f64651901a465"
        "6d74696d651b16345785d8a000016473697a6505666368756e6b7381825820000102030405060708"
        "090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f05a6646e616d6543646972646b696e6401"
        "646d6f64651901ed656d74696d65226473697a65006773756274726565582000000000000000000000"
        "00000000000000000000000000000000000000000000a6646e616d65426c6e646b696e6402646d6f"
        "64651901ff656d74696d65076473697a65006674617267657445612e747874"
    )


def wire(version: int = 2, **changes: Any) -> bytes:
    entry: dict[str, Any] = {
        "name": b"dev",
        "kind": int(EntryKind.CHAR_DEVICE),
        "mode": 0o600,
        "mtime": 1,
        "size": 0,
        "rdev": [1, 3],
        "link": 2,
        "xattrs": {b"user.a": b"1"},
    }
    entry.update(changes)
    return cbor2.dumps(
        {"v": version, "entries": [{k: v for k, v in entry.items() if v is not ...}]}
    )


def test_the_reference_v2_entry_is_valid() -> None:
    (entry,) = Tree.decode(wire()).entries
    assert entry == TreeEntry(
        b"dev", EntryKind.CHAR_DEVICE, 0o600, 1, rdev=(1, 3), link=2, xattrs=((b"user.a", b"1"),)
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"kind": 7}, "field 'kind'"),
        ({"rdev": ...}, "has field 'rdev'"),
        ({"rdev": ..., "link": ..., "xattrs": ...}, "has field 'rdev'"),
        ({"kind": int(EntryKind.FIFO)}, "has field 'rdev'"),
        ({"rdev": [1]}, "field 'rdev'"),
        ({"rdev": [1, -1]}, "field 'rdev'"),
        ({"rdev": [2**32, 0]}, "field 'rdev'"),
        ({"rdev": [True, 0]}, "field 'rdev'"),
        ({"link": 0}, "field 'link'"),
        ({"link": 2**33}, "field 'link'"),
        ({"link": "1"}, "field 'link'"),
        ({"kind": 1, "rdev": ..., "subtree": CID}, "cannot be hard-linked"),
        ({"xattrs": {}}, "field 'xattrs'"),
        ({"xattrs": [[b"user.a", b"1"]]}, "field 'xattrs'"),
        ({"xattrs": {"user.a": b"1"}}, "attribute name"),
        ({"xattrs": {b"": b"1"}}, "attribute name"),
        ({"xattrs": {b"user.\0": b"1"}}, "attribute name"),
        ({"xattrs": {b"u" * 256: b"1"}}, "attribute name"),
        ({"xattrs": {b"user.a": "1"}}, "attribute value"),
        ({"xattrs": {b"user.a": b"x" * (MAX_XATTR_VALUE + 1)}}, "attribute value"),
        (
            {"xattrs": {b"user.%d" % i: b"x" * MAX_XATTR_VALUE for i in range(4)}},
            "extended attributes over",
        ),
        ({"kind": int(EntryKind.FIFO), "rdev": ..., "chunks": [[CID, 0]]}, "has no data"),
        ({"kind": int(EntryKind.SOCKET), "rdev": ..., "target": b"x"}, "has no data"),
    ],
)
def test_a_bad_v2_entry_is_refused_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        Tree.decode(wire(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {},  # a device
        {"kind": int(EntryKind.FIFO), "rdev": ..., "link": ..., "xattrs": ...},
        {"kind": 0, "rdev": ..., "xattrs": ...},  # a hard link
        {"kind": 0, "rdev": ..., "link": ...},  # extended attributes
    ],
)
def test_a_v1_tree_holds_nothing_of_version_2(changes: dict[str, Any]) -> None:
    with pytest.raises(WireError, match=r"field 'kind'|version-1 tree holds no"):
        Tree.decode(wire(1, **changes))
