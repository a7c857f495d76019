"""How this peer can be reached, and what it therefore advertises, sans-IO.

A peer has candidate addresses: what its owner advertised (`--advertise`),
the port its router mapped, its observed public address (the host others see
it from, with its listen port: what a port-preserving NAT or a port forward
exposes), and its own listen or interface address. Whether others can dial
a candidate is not ours to judge from inside: peers of other address blocks
are asked to dial it back (as libp2p's AutoNAT does), and only what they
confirmed is advertised. Addresses in private ranges are for peers on the
same LAN: they are never checked from outside, and stay in the routes after
the confirmed ones. A peer nobody could dial, with relays, names its observed
public address as its main one (undialable, but its real address block) and
is dialled through its LAN address and its relays.

The verdict (`state`): "public" (an address other than a mapped one was
confirmed), "mapped" (the router's mapped port was), "relayed" (nothing was,
but relays carry us) or "unknown" (not checked yet, nobody to check with, or
nothing confirmed and no relay; `detail` says which).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from p2pbackup.net.contact import MAX_ROUTES, Contact, Route, format_address
from p2pbackup.net.interfaces import Interface, is_wildcard, kind_of, usable_hosts
from p2pbackup.net.observed import ObservedTally
from p2pbackup.net.transport import Address

PUBLIC, MAPPED, RELAYED, UNKNOWN = "public", "mapped", "relayed", "unknown"
RECHECK = 1800.0  # seconds before a checked candidate is checked again
# A candidate that failed its check is checked again sooner, then less and less often
# (up to RECHECK): a checker too busy to dial back in time must not leave a reachable
# peer relayed for half an hour.
RETRY_FAILED = 20.0
OBSERVED_CANDIDATES = 4  # observed hosts made candidates, most recent first
ROUTE_ONLY = frozenset({"lan", "link-local"})  # kinds never checked from outside


def outside_any_lan(host: str) -> bool:
    """Whether `host` is an address (or name) of the open internet."""
    return kind_of(host) in ("public", "name")


def dialable_outside(contact: Contact) -> bool:
    """Whether a peer outside the contact's LAN could dial it: through a relay, or at
    an address in no LAN range (a contact naming routes is dialled only at those)."""
    if any(route.relay is not None for route in contact.routes):
        return True
    hosts = [route.host for route in contact.routes] or [contact.host]
    return any(kind_of(host) not in ROUTE_ONLY for host in hosts)


@dataclass(frozen=True, slots=True)
class CheckResult:
    confirmed: bool
    confirmations: int
    asked: int
    when: float
    reason: str = ""
    failures: int = 0  # checks failed in a row, this one included

    def comes_due(self, recheck: float) -> float:
        """When this candidate is to be checked again."""
        if self.confirmed or self.failures == 0:
            return self.when + recheck
        return self.when + min(recheck, RETRY_FAILED * 2 ** (self.failures - 1))


def needed(asked: int) -> int:
    """Confirmations a candidate needs: two when two or more peers were asked, else one."""
    return min(2, asked)


class Reachability:
    """The candidates, what checking them found, and what follows for the handshake."""

    def __init__(
        self,
        bound: Address,
        *,
        advertised: Iterable[Address] = (),
        interfaces: Iterable[Interface] = (),
        tally: ObservedTally | None = None,
        recheck: float = RECHECK,
    ) -> None:
        self.bound = bound
        self.advertised = tuple(advertised)
        self.interfaces = tuple(interfaces)
        self.tally = tally if tally is not None else ObservedTally()
        self.recheck = recheck
        self.mapped: Address | None = None
        self.relays: tuple[Route, ...] = ()
        self.results: dict[Address, CheckResult] = {}
        # Told when the candidates change (a new mapping, observed address or relay).
        self.on_change: Callable[[], None] | None = None

    # ---- inputs ----------------------------------------------------------

    def set_bound(self, bound: Address) -> None:
        """The listener's address once bound (port 0 has become a real port)."""
        self.bound = bound
        self._changed()

    def set_mapped(self, address: Address | None) -> None:
        """The router's mapped address for our port (None: no mapping, or it was lost)."""
        if address != self.mapped:
            self.mapped = address
            self._changed()

    def set_relays(self, routes: Iterable[Route]) -> None:
        """The relay routes that currently carry us."""
        routes = tuple(routes)
        if routes != self.relays:
            self.relays = routes
            self._changed()

    def observed(self, host: str, reporter_block: str, now: float) -> None:
        """A peer of `reporter_block` said it sees us at `host`."""
        if self.tally.report(host, reporter_block, now):
            self._changed()

    def checked(
        self, candidate: Address, confirmations: int, asked: int, now: float, why: str = ""
    ) -> None:
        """`asked` peers (at least one) were asked to dial `candidate`; so many could
        (`why`: what a checker that could not said)."""
        ok = asked > 0 and confirmations >= needed(asked)
        reason = "" if ok else f"{confirmations} of {asked} peers could dial it"
        if reason and why:
            reason += f": {why}"
        failures = 0 if ok else self._failures_before(candidate) + 1
        self.results[candidate] = CheckResult(ok, confirmations, asked, now, reason, failures)

    def _failures_before(self, candidate: Address) -> int:
        previous = self.results.get(candidate)
        return 0 if previous is None or previous.confirmed else previous.failures

    def failed(self, candidate: Address, reason: str, now: float) -> None:
        """`candidate` could not be checked at all: its name did not resolve, or every
        checker refused to dial it. Asked again soon, then less and less often, as a
        failed check is: a refusal may pass (a checker busy, or one that dialled the
        address too often lately), and waiting out `recheck` after one left a
        reachable peer relayed for half an hour."""
        failures = self._failures_before(candidate) + 1
        self.results[candidate] = CheckResult(False, 0, 0, now, reason, failures)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # ---- candidates --------------------------------------------------------

    def candidates(self, now: float) -> list[Address]:
        """Every address this peer might be reached at, in order of preference."""
        found: list[Address] = list(self.advertised)
        if self.mapped is not None:
            found.append(self.mapped)
        port = self.bound[1]
        observed = self.tally.hosts_seen(now)[:OBSERVED_CANDIDATES]
        found += [(host, port) for host in observed if not is_wildcard(host)]
        if not self.advertised:
            found += self._own_addresses()
        return list(dict.fromkeys(found))

    def _own_addresses(self) -> list[Address]:
        host, port = self.bound
        if not is_wildcard(host):
            return [self.bound]
        hosts = usable_hosts(self.interfaces, host)
        # Loopback only when there is nothing else: others could never dial it.
        outward = [ip for ip in hosts if kind_of(ip) != "loopback"]
        return [(ip, port) for ip in outward or hosts]

    def due(self, now: float) -> list[Address]:
        """The candidates to check now: never checked, or not for `recheck` seconds."""
        return [
            candidate
            for candidate in self.candidates(now)
            if kind_of(candidate[0]) not in ROUTE_ONLY
            and (
                (result := self.results.get(candidate)) is None
                or now >= result.comes_due(self.recheck)
            )
        ]

    def next_due(self, now: float) -> float:
        """When the next candidate comes due (now, if one is); `recheck` ahead if none."""
        times = [
            now if (result := self.results.get(c)) is None else result.comes_due(self.recheck)
            for c in self.candidates(now)
            if kind_of(c[0]) not in ROUTE_ONLY
        ]
        return min(times, default=now + self.recheck)

    def confirmed(self, now: float) -> list[Address]:
        return [c for c in self.candidates(now) if (r := self.results.get(c)) and r.confirmed]

    def _lan(self, now: float) -> list[Address]:
        return [c for c in self.candidates(now) if kind_of(c[0]) in ROUTE_ONLY]

    # ---- verdict -----------------------------------------------------------

    def state(self, now: float) -> str:
        confirmed = self.confirmed(now)
        if any(address != self.mapped for address in confirmed):
            return PUBLIC
        if confirmed:
            return MAPPED
        return RELAYED if self.relays else UNKNOWN

    def unconfirmed(self, now: float) -> list[tuple[Address, str]]:
        """The candidates checked and found wanting, each with why."""
        return [
            (c, r.reason)
            for c in self.candidates(now)
            if (r := self.results.get(c)) is not None and not r.confirmed
        ]

    def detail(self, now: float) -> str:
        """Why the state is what it is, in one line for `status`."""
        state = self.state(now)
        failed = "; ".join(
            f"{format_address(c)} not reachable ({why})" for c, why in self.unconfirmed(now)
        )
        if state in (PUBLIC, MAPPED):
            line = f"reachable at {format_address(self.confirmed(now)[0])} ({state})"
        elif state == RELAYED:
            line = "relayed through " + ", ".join(str(route) for route in self.relays)
        elif failed:
            return f"unknown: {failed}"
        elif self._lan(now) and not self.due(now):
            return f"unknown: reachable on its LAN only, at {format_address(self._lan(now)[0])}"
        else:
            return "unknown: no peer has checked yet"
        return f"{line}; {failed}" if failed else line

    def main_address(self, now: float) -> Address:
        """The address the handshake names as ours (and address blocks count us by)."""
        confirmed = self.confirmed(now)
        if confirmed:
            return confirmed[0]
        observed = self.tally.hosts_seen(now)
        if self.relays and observed:
            return (observed[0], self.bound[1])
        if self.advertised:
            return self.advertised[0]
        own = self._own_addresses()
        return own[0] if own else self.bound

    def routes(self, now: float) -> tuple[Route, ...]:
        """Every way to dial us, as the handshake tells others: the confirmed addresses,
        then LAN ones, then relays; none when the main address is the only way."""
        confirmed = self.confirmed(now)
        if not confirmed and not self.relays:
            return ()
        direct = list(dict.fromkeys([*confirmed, *self._lan(now)]))
        if direct == [self.main_address(now)] and not self.relays:
            return ()
        return tuple([*(Route(*a) for a in direct), *self.relays][:MAX_ROUTES])

    def summary(self, now: float) -> dict[str, object]:
        """What `status --json` shows under `reachability`."""
        return {
            "state": self.state(now),
            "detail": self.detail(now),
            "addresses": [format_address(a) for a in self.confirmed(now)],
            "main": format_address(self.main_address(now)),
            "routes": [str(route) for route in self.routes(now)],
            "observed": self.tally.hosts_seen(now),
            "unconfirmed": [
                {"address": format_address(c), "reason": why} for c, why in self.unconfirmed(now)
            ],
        }
