"""The walk of a snapshot's folder trees for a restore: what to create and what to write.

Each folder list is read, the entries the `include` patterns select are
planned, and a folder's subfolders, symlinks and spread files are created in
one worker call (a call per entry cost more than creating it). Files that lie
whole in one pack are only planned here: the data phase creates them when
their first chunk has passed its check. The walk names each file's packs to
the prefetch as it goes, in the order the data phase will want them.

A subset restore keeps the folders on the way to an included path uncreated
until something inside them is restored, so it leaves no skeleton of empty
folders.

Of a group of hard links, the first path the walk meets (among the included
ones) is restored as its entry says; the others become links to it once it is
written. Device nodes are made only where the restore may make them (as root);
elsewhere they are listed as not restored.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

from p2pbackup.backup.blob_reader import BlobReader
from p2pbackup.backup.progress import RestoreStats
from p2pbackup.backup.restore_fetch import Prefetch, pack_extents
from p2pbackup.backup.restore_files import FilePlan, Halt, Make, Piece, TargetFull, make_entries
from p2pbackup.backup.snapshot import Locator
from p2pbackup.backup.tree import DEVICES, EntryKind, Tree, TreeEntry
from p2pbackup.base.offload import RunSync
from p2pbackup.errors import P2PBackupError

_GLOB_CHARS = "*?["


@dataclass
class Plan:
    """What the walk leaves for the data phase and the last step."""

    include: tuple[str, ...]
    prefetch: Prefetch
    files: list[FilePlan] = field(default_factory=list)
    dirs: list[tuple[bytes, TreeEntry]] = field(default_factory=list)  # deepest first
    matched: set[str] = field(default_factory=set)  # the include patterns that matched
    devices: bool = False  # whether device nodes may be made: only root can
    holders: dict[int, bytes] = field(default_factory=dict)  # link group: its first path
    links: list[tuple[bytes, bytes, TreeEntry]] = field(default_factory=list)  # path, holder
    unmade: set[bytes] = field(default_factory=set)  # paths the walk failed to make
    xattrs: list[tuple[bytes, TreeEntry]] = field(default_factory=list)  # made, with xattrs


@dataclass(frozen=True)
class _Visit:
    """A subfolder to walk once its parent's entries are made."""

    entry: TreeEntry
    path: bytes
    relative: bytes
    included: bool
    subtree: Tree


@dataclass
class _Folder:
    """One folder's entries as planned: what to create now and which folders to walk."""

    makes: list[Make] = field(default_factory=list)
    visits: list[_Visit] = field(default_factory=list)
    waiting: int = 0  # files made when their data comes, which need this folder too


def included(relative: bytes, patterns: tuple[str, ...]) -> bool:
    """True when `relative` matches a pattern or lies inside a folder that does."""
    return not patterns or bool(matching(relative, patterns))


def matching(relative: bytes, patterns: tuple[str, ...]) -> list[str]:
    """The patterns `relative` matches or lies inside a match of."""
    text = os.fsdecode(relative)
    return [
        p for p in patterns if fnmatch.fnmatchcase(text, p) or text.startswith(p.rstrip("/") + "/")
    ]


def may_contain(relative: bytes, patterns: tuple[str, ...]) -> bool:
    """Whether some pattern could match a path inside the folder `relative`: a match
    must begin with the pattern's literal prefix, the part before any glob character."""
    inside = os.fsdecode(relative) + "/"
    for pattern in patterns:
        cut = min((i for i, c in enumerate(pattern) if c in _GLOB_CHARS), default=len(pattern))
        literal = pattern[:cut]
        if literal.startswith(inside) or inside.startswith(literal):
            return True
    return False


def paths_hint(root_tree: Tree) -> str:
    """What a snapshot's paths begin with, for an include pattern that matched nothing:
    each backed-up path's final name, which is easy to leave out."""
    tops = [
        os.fsdecode(e.name) + ("/..." if e.kind is EntryKind.DIR else "") for e in root_tree.entries
    ]
    shown = ", ".join(tops[:5]) + (", ..." if len(tops) > 5 else "")
    return f"paths start with the backed-up folder's name: {shown or 'none'}"


def file_plan(
    index: dict[bytes, Locator], path: bytes, entry: TreeEntry, index_note: str
) -> FilePlan:
    """Where each of a file's chunks lies, and whether they all lie in one pack."""
    pieces: list[Piece] = []
    offset = 0
    for chunk_id, size in entry.chunks:
        locator = index.get(chunk_id)
        if locator is None:
            reason = f"chunk {chunk_id.hex()[:12]} is in no index of this owner"
            return FilePlan(path, entry, (), failed=reason + index_note)
        pieces.append((offset, chunk_id, locator))
        offset += size
    packs = len({locator.pack_id for _, _, locator in pieces})
    return FilePlan(path, entry, tuple(pieces), spread=packs > 1, packs_left=packs)


class TreeWalk:
    """Plans a restore folder by folder, creating what each folder holds as it goes.

    `index_note` ends the reason of a chunk or folder list no index names: it
    says which index blobs could not be read."""

    def __init__(
        self,
        reader: BlobReader,
        run_sync: RunSync,
        halt: Halt,
        stats: RestoreStats,
        plan: Plan,
        index_note: str,
    ) -> None:
        self.reader = reader
        self.run_sync = run_sync
        self.halt = halt
        self.stats = stats
        self.plan = plan
        self.index_note = index_note

    async def walk(
        self, tree: Tree, out_dir: bytes, relative: bytes, whole: bool, uncreated: list[bytes]
    ) -> None:
        """Plan one folder's entries, create them, then walk its folders.

        `whole`: everything here is included. Otherwise folders on the way to an
        included path are in `uncreated` until something inside them is restored.
        A folder whose list cannot be read is reported and not created."""
        if self.halt.reason is not None:
            return
        folder = await self._plan_folder(tree, out_dir, relative, whole)
        unmade = await self._make(folder, uncreated)
        for visit in folder.visits:
            if visit.path not in unmade:
                await self._visit(visit, uncreated)
            elif self.halt.reason is None:
                await self._fail_subtree(visit, unmade[visit.path])

    async def _plan_folder(
        self, tree: Tree, out_dir: bytes, relative: bytes, whole: bool
    ) -> _Folder:
        folder = _Folder()
        patterns = self.plan.include
        for entry in tree.entries:
            path = os.path.join(out_dir, entry.name)
            rel = os.path.join(relative, entry.name)
            wanted = whole or self._wanted(rel)
            if entry.kind is EntryKind.DIR:
                if wanted or may_contain(rel, patterns):
                    await self._plan_dir(folder, entry, path, rel, wanted)
            elif not wanted or (entry.link and self._plan_link(folder, path, entry)):
                continue
            elif entry.kind is EntryKind.FILE:
                self._plan_file(folder, path, entry)
            else:
                self._plan_node(folder, path, entry)
        return folder

    def _wanted(self, rel: bytes) -> bool:
        """Whether an include pattern selects `rel`; notes which ones did."""
        hits = matching(rel, self.plan.include)
        self.plan.matched.update(hits)
        return bool(hits)

    def _plan_link(self, folder: _Folder, path: bytes, entry: TreeEntry) -> bool:
        """True when `path` is a later link of a group whose first path is planned:
        it is linked to it at the end."""
        holder = self.plan.holders.setdefault(entry.link, path)
        if holder == path:
            return False
        self.plan.links.append((path, holder, entry))
        folder.waiting += 1  # its folder must be made
        return True

    def _plan_node(self, folder: _Folder, path: bytes, entry: TreeEntry) -> None:
        """A symlink, FIFO, socket or device node: made with the folder's entries."""
        if entry.kind in DEVICES and not self.plan.devices:
            self.stats.fail(path, "device nodes need root")
            self.plan.unmade.add(path)
            return
        folder.makes.append(Make(path, entry))

    async def _plan_dir(
        self, folder: _Folder, entry: TreeEntry, path: bytes, rel: bytes, wanted: bool
    ) -> None:
        assert entry.subtree is not None
        try:
            subtree = Tree.decode(await self.reader.blob(entry.subtree))
        except P2PBackupError as exc:
            self.stats.fail(path, f"folder list unreadable: {exc}{self.index_note}")
            return
        folder.visits.append(_Visit(entry, path, rel, wanted, subtree))
        if wanted:
            folder.makes.append(Make(path, entry))

    def _plan_file(self, folder: _Folder, path: bytes, entry: TreeEntry) -> None:
        file = file_plan(self.reader.index, path, entry, self.index_note)
        for pack_id, extent in pack_extents(file.pieces).items():
            self.plan.prefetch.want(pack_id, extent)
        if file.failed is not None:
            self.plan.files.append(file)  # listed as failed, never created
        elif file.spread:
            folder.makes.append(Make(path, entry, file))
        else:
            self.plan.files.append(file)
            folder.waiting += 1

    async def _make(self, folder: _Folder, uncreated: list[bytes]) -> dict[bytes, str]:
        """Create the folder's planned entries, after the folders on the way to them
        when this is the first thing restored below those; the paths not made, with
        why. A folder of `folder.visits` not made is listed by `walk` with what it
        held."""
        unmade: dict[bytes, str] = {}
        visited = {visit.path for visit in folder.visits}
        if not folder.makes and not folder.waiting:
            return unmade
        makes = [Make(path, None) for path in uncreated] + folder.makes
        uncreated.clear()
        try:
            reasons = await self.run_sync(make_entries, makes, self.halt)
        except TargetFull as full:
            makes, reasons = makes[: len(full.done)], full.done
        for make, reason in zip(makes, reasons, strict=True):
            kind = make.entry.kind if make.entry is not None else EntryKind.DIR
            if reason is not None:
                unmade[make.path] = reason
                if make.path not in visited:
                    self.stats.fail(make.path, reason)
                if kind is EntryKind.FILE:
                    self.stats.files_failed += 1
                continue
            if kind is EntryKind.SYMLINK:
                self.stats.symlinks += 1
            elif make.file is not None:
                self.plan.files.append(make.file)
            # A folder or spread file gets its attributes when it is finished.
            if make.entry is not None and make.entry.xattrs and kind > EntryKind.DIR:
                self.plan.xattrs.append((make.path, make.entry))
        self.plan.unmade.update(unmade)
        return unmade

    async def _visit(self, visit: _Visit, uncreated: list[bytes]) -> None:
        """Walk a subfolder; it is finished at the end (deepest first) only if it was
        made, or something inside it was restored."""
        if visit.included:
            await self.walk(visit.subtree, visit.path, visit.relative, True, [])
        else:
            uncreated.append(visit.path)
            await self.walk(visit.subtree, visit.path, visit.relative, False, uncreated)
            if uncreated and uncreated[-1] == visit.path:
                uncreated.pop()  # nothing inside was restored
                return
        self.plan.dirs.append((visit.path, visit.entry))
        self.stats.dirs += 1

    async def _fail_subtree(self, visit: _Visit, reason: str) -> None:
        """A folder that could not be made: list it with why and how many of the entries
        it holds (those the restore asked for) are lost with it; its files count as not
        restored."""
        files, entries = await self._count(visit)
        self.stats.files_failed += files
        held = "the 1 entry under it is" if entries == 1 else f"the {entries} entries under it are"
        self.stats.fail(visit.path, f"{reason}; {held} not restored")

    async def _count(self, visit: _Visit) -> tuple[int, int]:
        """(files, entries) the restore would have made under `visit`; a folder list
        that cannot be read counts as its folder alone."""
        patterns = self.plan.include
        files = entries = 0
        stack = [(visit.subtree, visit.relative, visit.included)]
        while stack:
            tree, relative, whole = stack.pop()
            for entry in tree.entries:
                rel = os.path.join(relative, entry.name)
                wanted = whole or included(rel, patterns)
                entries += wanted
                if entry.kind is EntryKind.FILE:
                    files += wanted
                elif entry.kind is EntryKind.DIR and (wanted or may_contain(rel, patterns)):
                    assert entry.subtree is not None
                    try:
                        subtree = Tree.decode(await self.reader.blob(entry.subtree))
                    except P2PBackupError:
                        continue
                    stack.append((subtree, rel, wanted))
        return files, entries
