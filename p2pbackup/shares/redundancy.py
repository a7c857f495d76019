"""How many shares a pack is cut into, how many rebuild it, and on how few peers a
backup accepts it: parsed, checked and defaulted in one place, so `init`,
`config set`, `backup --redundancy` and the peer agree (decision 0034).

Light on imports: the CLI reads it on every start.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p2pbackup.base import defaults
from p2pbackup.errors import P2PBackupError


@dataclass(frozen=True)
class Redundancy:
    k: int = defaults.SHARES_NEEDED
    n: int = defaults.SHARES_TOTAL
    happy: int = defaults.HAPPY
    lease_seconds: int = defaults.LEASE_SECONDS

    @property
    def label(self) -> str:
        return f"{self.k}-of-{self.n}"


_K_OF_N = re.compile(r"\s*(\d{1,3})\s*-?\s*of\s*-?\s*(\d{1,3})\s*", re.IGNORECASE)


def default_happy(k: int, n: int) -> int:
    """The fewest distinct peers a pack of k-of-n is accepted on, unless told otherwise:
    k and half the spare shares, rounded up (7 for 3-of-10, Tahoe's default; 3 for
    2-of-4), so a pack survives losing half its spares' peers on the day it is made."""
    return min(n, k + math.ceil((n - k) / 2))


def check_redundancy(k: int, n: int, happy: int) -> None:
    """ValueError, in words a user can act on, unless 1 <= k <= happy <= n <= 255."""
    if not 1 <= k <= n <= 255:
        raise ValueError(f"{k}-of-{n}: need 1 <= K <= N <= 255")
    if not k <= happy <= n:
        raise ValueError(f"happy {happy} for {k}-of-{n}: it must lie between {k} and {n}")


def parse_redundancy(text: str, happy: int | None = None) -> tuple[int, int, int]:
    """(k, n, happy) from 'K-of-N' (happy: `default_happy` unless given); ValueError."""
    match = _K_OF_N.fullmatch(text)
    if match is None:
        raise ValueError(f"cannot read redundancy {text!r}; write it as K-of-N, e.g. 2-of-4")
    k, n = int(match.group(1)), int(match.group(2))
    chosen = default_happy(k, n) if happy is None else happy
    check_redundancy(k, n, chosen)
    return k, n, chosen


def redundancy_of(settings: Mapping[str, Any], lease_seconds: int) -> Redundancy:
    """The owner's redundancy as its settings file holds it (`init`, `config set`); a
    value that is not one is refused in one line, naming the command that fixes it."""
    k = settings.get("k", defaults.SHARES_NEEDED)
    n = settings.get("n", defaults.SHARES_TOTAL)
    happy = settings.get("happy")
    try:
        if not all(isinstance(v, int) for v in (k, n, happy if happy is not None else 0)):
            raise ValueError(f"k={k!r}, n={n!r}, happy={happy!r}")
        chosen = default_happy(k, n) if happy is None else happy
        check_redundancy(k, n, chosen)
    except ValueError as exc:
        raise P2PBackupError(
            f"the owner's redundancy setting is not valid ({exc}); "
            "run `p2pbackup config set redundancy K-of-N`"
        ) from None
    return Redundancy(k, n, chosen, lease_seconds)


def chosen_redundancy(setting: Redundancy, text: str | None, happy: int | None) -> Redundancy:
    """`setting`, or the K-of-N `text` and `happy` one run asks for instead."""
    try:
        if text is not None:
            k, n, happy = parse_redundancy(text, happy)
        else:
            k, n, happy = setting.k, setting.n, happy or setting.happy
            check_redundancy(k, n, happy)
    except ValueError as exc:
        raise P2PBackupError(str(exc)) from None
    return dataclasses.replace(setting, k=k, n=n, happy=happy)


def fitting_redundancy(peers: int) -> tuple[int, int] | None:
    """The K of the widest K-of-N at the defaults' ratio of K to N (rounded up) whose
    default happy `peers` other peers can meet, with N no more than `peers`: each pack
    then has all its shares. A wider N left every pack short of shares for good, which
    `check` showed as degraded and `repair` could not mend. None when there is none."""
    for n in range(min(2 * peers, 255), 0, -1):
        k = max(1, -(-n * defaults.SHARES_NEEDED // defaults.SHARES_TOTAL))
        if default_happy(k, n) <= peers:
            return k, min(n, peers)
    return None


def too_few_peers(found: int, r: Redundancy) -> str:
    """Why a mesh this small cannot take a pack, and the one command that fixes it."""
    fits = fitting_redundancy(found)
    change = (
        f", or if the mesh stays this small, run "
        f"`p2pbackup config set redundancy {fits[0]}-of-{fits[1]}`"
        if fits is not None
        else ""
    )
    return (
        f"only {found} peers can hold shares ({r.happy} needed for {r.label}, "
        f"happy {r.happy}; this peer holds none of its own); start more peers{change}"
    )
