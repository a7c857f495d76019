"""Sizes as people type them ('20GiB', '500MB', '1.5G') and as they like to read them.

Units follow IEC/SI so a number means what its unit says: 'KiB/MiB/GiB' and a
bare 'K/M/G' (as in `ls -h`, restic, docker) are powers of 1024, while 'kB/MB/GB'
with a 'B' and no 'i' are powers of 1000, as disk vendors print them.
"""

from __future__ import annotations

import re
from fractions import Fraction

_PREFIXES = "KMGTPE"
_SIZE = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[a-z]*)", re.IGNORECASE)
_FORMS = "use a byte count or forms like 1048576, 500MB, 20GiB, 1.5G"


def _scale(unit: str) -> int | None:
    """Bytes per `unit`, or None when the unit is not one we know."""
    upper = unit.upper()
    if upper in ("", "B"):
        return 1
    prefix, rest = upper[0], upper[1:]
    if prefix not in _PREFIXES:
        return None
    power = _PREFIXES.index(prefix) + 1
    if rest in ("", "I", "IB"):
        return 1024**power
    if rest == "B":
        return 1000**power
    return None


def parse_size(text: str) -> int:
    """Bytes in `text`, rounded to the nearest byte; ValueError that names the accepted forms."""
    if not isinstance(text, str):
        raise ValueError(f"cannot read size {text!r}; {_FORMS}")
    match = _SIZE.fullmatch(text.strip())
    scale = _scale(match.group("unit")) if match else None
    if match is None or scale is None:
        raise ValueError(f"cannot read size {text!r}; {_FORMS}")
    # Fraction, not float: a byte count past 2**53 must come back exact.
    return round(Fraction(match.group("number")) * scale)


def format_size(size: int) -> str:
    """A short binary-unit form ('1.5 GiB'); `parse_size` reads it back within 0.5%."""
    if size < 0:
        raise ValueError(f"a size cannot be negative, got {size}")
    if size < 1024:
        return f"{size} B"
    value, prefix = float(size), ""
    for candidate in _PREFIXES:
        if value < 1024 and prefix:
            break
        value /= 1024
        prefix = candidate
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text} {prefix}iB"


# What one owner may use of a holder's capacity unless told otherwise: half, so no
# single identity (a squatter's included) can take the space every owner shares,
# while an owner with few peers can still place a share of each pack on each.
DEFAULT_OWNER_QUOTA = "50%"

_FRACTION = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<percent>%?)")


def parse_quota(text: str, capacity: int) -> int:
    """Bytes one owner may use: a size ('2GiB'), a percentage of `capacity` ('50%') or a
    fraction of it ('0.5'); never more than `capacity`. ValueError names the forms."""
    match = _FRACTION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is not None and (match.group("percent") or "." in match.group("number")):
        share = Fraction(match.group("number")) / (100 if match.group("percent") else 1)
        if share > 1:
            raise ValueError(f"an owner quota of {text!r} is more than the whole capacity")
        return min(capacity, int(share * capacity))
    try:
        return min(capacity, parse_size(text))
    except ValueError:
        raise ValueError(f"cannot read owner quota {text!r}; use a size or 50% or 0.5") from None
