"""The mesh where its users are, end to end on the testbed: used by the acceptance
test and by `make demo-nat`.

An owner in home B (a NAT with no UPnP) backs up a real folder; its shares land
on peers in home A (behind a NAT with UPnP), in home B, on a LAN and on the
public internet; then the owner's machine is destroyed and a new machine in
home A restores the folder from the recovery phrase and one member's address.
"""

from __future__ import annotations

import random
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netbed.bed import Testbed
from netbed.mesh import NetMesh
from netbed.plan import HOME_A, HOME_B, LAN, PUBLIC

# Where the peers live: the founder first, the owner in home B.
LAYOUT = ("pub1", "pub2", "pub3", "a1", "a2", "b1", "b2", "lan1", "lan2", "lan3")
OWNER = LAYOUT.index("b1")
# What each site's peers should find out about themselves.
EXPECTED_REACH = {PUBLIC: {"public"}, LAN: {"public"}, HOME_A: {"mapped"}, HOME_B: {"relayed"}}
# Peers started together need a few seconds to check each other's addresses.
SERVE_ARGS = ("--rpc-timeout", "3s")
TABLE_AT_LEAST = 6
Say = Callable[[str], None]


@dataclass
class Outcome:
    reachability: dict[str, str] = field(default_factory=dict)
    holders_by_site: dict[str, int] = field(default_factory=dict)
    files: int = 0
    restored: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def make_tree(root: Path, files: int = 60, seed: int = 7) -> Path:
    rng = random.Random(seed)
    for i in range(files):
        folder = root / f"dir{i % 6}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{i:03d}.bin").write_bytes(rng.randbytes(rng.randrange(1, 200_000)))
    return root


def start_mesh(bed: Testbed, root: Path, say: Say) -> NetMesh:
    places = [bed.hosts[name] for name in LAYOUT]
    mesh = NetMesh.on(root, places, *SERVE_ARGS)
    say(f"starting {len(places)} peers: " + ", ".join(f"{h.name} ({h.site})" for h in places))
    mesh.start()
    return mesh


def wait_reachability(mesh: NetMesh, say: Say, deadline: float = 120.0) -> dict[str, str]:
    """Until every peer's own verdict is the one its site should give; the verdicts."""
    states: dict[str, str] = {}

    def settled() -> bool:
        for index, host in enumerate(mesh.places):
            if not mesh.peers[index].alive:
                continue
            reach = mesh.status(index).get("reachability") or {}
            states[host.name] = str(reach.get("state"))
        return all(
            states[h.name] in EXPECTED_REACH[h.site]
            for i, h in enumerate(mesh.places)
            if mesh.peers[i].alive
        )

    try:
        mesh.wait_for("reachability as expected", settled, deadline=deadline, step=0.5)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; the peers say {states}") from None
    say("reachability: " + ", ".join(f"{name} {state}" for name, state in states.items()))
    return states


def wait_for_every_site(mesh: NetMesh, owner: int) -> None:
    """Until the owner's routing table knows a peer of every other site. A table of
    `TABLE_AT_LEAST` can still miss a whole site (the LAN's three share a /24), and an
    owner places on the peers it knows: the story asks for holders everywhere."""
    site_of = {
        str(mesh.status(i)["node_id"]): host.site
        for i, host in enumerate(mesh.places)
        if i != owner and mesh.peers[i].alive
    }

    def every_site() -> bool:
        known = {site_of.get(p["node_id"]) for p in mesh.control(owner, "peers")["peers"]}
        return known >= set(site_of.values())

    mesh.wait_for("the owner's table to know a peer of every site", every_site, step=0.5)


def holders_by_site(mesh: NetMesh, owner: int) -> dict[str, int]:
    """How many peers of each site hold shares (the owner's own peer aside)."""
    counts: dict[str, int] = {}
    for index, host in enumerate(mesh.places):
        if index == owner or not mesh.peers[index].alive:
            continue
        if mesh.status(index)["shares_held"] > 0:
            counts[host.site] = counts.get(host.site, 0) + 1
    return counts


def back_up_and_recover(bed: Testbed, workdir: Path, say: Say) -> Outcome:
    """The whole story; raises when a step cannot finish, reports what it found."""
    from p2pbackup.cli.demo import compare_trees

    outcome = Outcome()
    tree = make_tree(workdir / "documents")
    mesh = start_mesh(bed, workdir / "mesh", say)
    try:
        # At most two peers of one /24 share a bucket (decision 0023): the public
        # segment's three and the LAN's three need not all be in the owner's table.
        outcome.reachability = wait_reachability(mesh, say)
        mesh.wait_for_tables(at_least=TABLE_AT_LEAST, indices=[OWNER])
        wait_for_every_site(mesh, OWNER)
        mesh.cli_json(OWNER, "config", "set", "redundancy", "3-of-7")
        saved = mesh.cli_json(OWNER, "backup", str(tree))
        outcome.files = int(saved["files"])
        outcome.holders_by_site = holders_by_site(mesh, OWNER)
        say(f"backed up {outcome.files} files from b1; holders by site: {outcome.holders_by_site}")

        phrase = mesh.peers[OWNER].recovery_phrase
        assert phrase, "the owner's recovery phrase was not kept"
        mesh.stop_peer(OWNER, signal.SIGKILL)
        shutil.copy(mesh.peers[OWNER].home / "serve.log", workdir / "b1-serve.log")
        shutil.rmtree(mesh.peers[OWNER].home)
        say("b1 is destroyed: its peer killed, its home deleted")

        member = mesh.peers[LAYOUT.index("pub2")].listen
        mesh.places = [*mesh.places, bed.hosts["a2"]]
        fresh = mesh.add_peer()
        mesh.cli(fresh.index, "init", "--recover", "--json", check=True, stdin=phrase)
        mesh.start_peer(fresh.index, bootstrap=member)
        mesh.wait_for_tables(at_least=3, indices=[fresh.index])
        say(f"a new machine in home A recovered from the phrase and {member}")
        target = workdir / "restored"
        outcome.restored = mesh.cli_json(fresh.index, "restore", "latest", "--target", str(target))
        files, _, outcome.problems = compare_trees(tree, target / tree.name)
        say(f"restored {files} files; {len(outcome.problems)} differences")
    finally:
        mesh.close()
    return outcome


__all__ = ["EXPECTED_REACH", "HOME_A", "HOME_B", "LAYOUT", "Outcome", "back_up_and_recover"]
