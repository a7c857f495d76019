"""Durations and sizes as people type them: '2s', '10m', '1h30m'; '20GiB', '500MB'."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError with the accepted forms."""
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return float(cleaned)
    parts = _DURATION.findall(cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise ValueError(f"cannot read duration {text!r}; use forms like 30s, 10m, 1h30m, 7d")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_size(text: str) -> int:
    """Bytes in `text` (binary prefixes with or without 'i'); raises ValueError."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"cannot read size {text!r}; use forms like 500MB, 20GiB, 1T")
    number, unit = float(match.group(1)), match.group(2).upper().replace("I", "").rstrip("B")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[unit]
    return int(number * scale)
