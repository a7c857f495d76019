"""Quorum reads and writes of records, sans-IO.

A write goes to the N closest peers and succeeds with W acknowledgements; a
read asks the N closest and needs R answers, R + W > N, so it meets at least
one replica of the newest acknowledged write. The read merges what it got
and names the replicas that are behind, for read repair.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p2pbackup.dht.records import Record, covers, merge
from p2pbackup.errors import RecordRejected
from p2pbackup.net.contact import Contact


@dataclass
class QuorumWrite:
    targets: int
    w: int
    acks: list[Contact] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    failures: int = 0

    def on_ack(self, contact: Contact) -> None:
        self.acks.append(contact)

    def on_refusal(self, reason: str) -> None:
        self.refusals.append(reason)

    def on_failure(self) -> None:
        self.failures += 1

    @property
    def succeeded(self) -> bool:
        return len(self.acks) >= self.w


@dataclass
class QuorumRead:
    key: bytes
    r: int
    answers: dict[bytes, tuple[Contact, Record | None]] = field(default_factory=dict)
    failures: int = 0
    invalid: int = 0

    def on_answer(self, contact: Contact, record: Record | None) -> None:
        """Count an answer; a record that fails its checks counts as none."""
        if record is not None and (record.key != self.key or not record.is_valid()):
            self.invalid += 1
            record = None
        self.answers[contact.node_id] = (contact, record)

    def on_failure(self) -> None:
        self.failures += 1

    @property
    def enough(self) -> bool:
        return len(self.answers) >= self.r

    def merged(self) -> Record | None:
        result: Record | None = None
        for _, record in self.answers.values():
            if record is None:
                continue
            try:
                result = merge(result, record)
            except RecordRejected:
                continue  # a kind or owner clash: keep the first valid view
        return result

    def stale(self) -> list[Contact]:
        """Answering replicas that do not hold everything the merged record holds."""
        newest = self.merged()
        if newest is None:
            return []
        return [c for c, record in self.answers.values() if not _safely_covers(record, newest)]


def _safely_covers(held: Record | None, newest: Record) -> bool:
    """A replica holding a record that cannot merge (a kind clash) is stale too."""
    try:
        return covers(held, newest)
    except RecordRejected:
        return False
