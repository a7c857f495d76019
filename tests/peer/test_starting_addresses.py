"""Where `serve` starts from: a home recovered from its phrase keeps no member's address,
so the first `--bootstrap` it is given is kept for its next start."""

from __future__ import annotations

from pathlib import Path

from p2pbackup.crypto.identity import Identity
from p2pbackup.mesh.saved import SavedMesh, founded
from p2pbackup.peer.home import Home
from p2pbackup.peer.mesh_control import starting_addresses


def test_the_first_addresses_given_are_kept_and_used_when_none_are_given(tmp_path: Path) -> None:
    home, member, node = Home(tmp_path), Identity.generate(), Identity.generate()
    saved = founded(member, node.public_key, "laptop", 1_800_000_000)
    assert starting_addresses(home, saved, ()) == ()  # recovered: nobody to start from

    given = (("127.0.0.1", 7500), ("::1", 7501))
    assert starting_addresses(home, saved, given) == given
    kept = SavedMesh.from_bytes(home.read_mesh() or b"", member, node.public_key)
    assert starting_addresses(home, kept, ()) == given

    assert starting_addresses(home, kept, (("127.0.0.2", 7600),)) == (("127.0.0.2", 7600),)
    again = SavedMesh.from_bytes(home.read_mesh() or b"", member, node.public_key)
    assert again.bootstrap == ["127.0.0.1:7500", "[::1]:7501"]  # the first kept, not replaced
