"""How often and how hard a storage peer looks after its shares, and what it counts.

The tunables live apart from the loop that uses them so the decision rules
(`rounds`) and the I/O driver (`maintainer`) read one definition, and a peer's
status report shows the same counters the simulator sums.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pbackup.shares.lease_rules import MAX_LEASE_SECONDS

# Peers beyond n that a survey looks up and asks: holders that joins pushed just
# outside the n closest still count, and repair finds takers among them.
SURVEY_MARGIN = 5


@dataclass(frozen=True)
class MaintenanceConfig:
    audit_interval: float = 3600.0
    # A sibling's later lease is adopted up to now plus this, as the holder caps what
    # it is sent: an owner-signed 2^40 s lease must not outlive the holder's rule.
    max_lease: int = MAX_LEASE_SECONDS
    repair_threshold: int = 7
    # A holder that failed this many rounds in a row counts as lost; before
    # that its share is rebuilt only when the set is under the threshold.
    lost_after: int = 2
    request_timeout: float = 10.0
    share_timeout: float = 60.0
    parallel_packs: int = 4
    # Between full surveys (lookup, query, audit of every sibling), the keeper of a
    # whole set audits its siblings directly for this many rounds, and every other
    # holder only checks that the keeper audited it lately (or audits the keeper)
    # for `light_rounds`: a healthy set then costs about n audits a round instead
    # of n lookups, n^2 queries and n^2 audits. A closer newcomer in the routing
    # table, or any failed audit, brings the full survey back at once.
    quiet_rounds: int = 11
    light_rounds: int = 48
    # A holder near the edge of the n closest whose lookup of a set found its routing
    # table complete there asks the table alone for this many audit intervals.
    lookup_trust_rounds: float = 3.0
    # A sibling's index counts (to drop our copy, to trust it as keeper or auditor)
    # once it proved it to us in this many rounds, at least `audit_interval / 4`
    # apart, spanning at least `proof_span` audit intervals: decision 0021.
    proof_rounds: int = 3
    proof_span: float = 1.0
    # A peer takes rebalanced shares, and is preferred for rebuilt ones, only once it
    # answered us first-hand at its address this long with no failed audit.
    vetting_period: float = 3 * 86_400.0

    @property
    def proof_span_seconds(self) -> float:
        return self.proof_span * self.audit_interval

    @property
    def gap(self) -> float:
        """Proofs closer together than this count once (decision 0021)."""
        return self.audit_interval / 4

    @property
    def forced_surveys(self) -> int:
        """Full surveys after a hand-over: enough for the taker to establish its index."""
        return 2 * self.proof_rounds + 2


@dataclass
class MaintenanceStats:
    rounds: int = 0
    audits: int = 0
    audits_failed: int = 0
    repairs: int = 0
    shares_rebuilt: int = 0
    repair_bytes: int = 0
    handed_off: int = 0
    expired: int = 0
    errors: int = 0
    lookups: int = 0
    leases_adopted: int = 0
    keeper_heard: int = 0  # rounds a holder skipped because its keeper audited it
    duplicates_dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)
