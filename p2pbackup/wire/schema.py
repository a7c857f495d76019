"""Strict checks for values decoded from CBOR.

A check takes a decoded value and returns it (possibly normalised) or raises
`WireError`. Messages declare one check per field; anything not declared is
refused, so a peer cannot smuggle fields past a schema. A `WireField` adds the
conversions for an attribute that is not sent as it is (a nested object).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from p2pbackup.errors import WireError
from p2pbackup.wire.big_bytes import Buffer, loads_map

Check = Callable[[Any], Any]


def bytes_field(
    *, exact: int | None = None, max_len: int | None = None, view: bool = False
) -> Check:
    """Bytes of the length asked. A big byte string a message's decoder left as a
    read-only view of its frame (`load_map(..., views=True)`) stays one with `view`,
    and is copied out once checked otherwise."""

    def check(value: Any) -> bytes | memoryview:
        if isinstance(value, memoryview):
            if not value.readonly or value.format != "B" or value.ndim != 1:
                raise WireError("expected bytes, got a memoryview")
        elif not isinstance(value, bytes):
            raise WireError(f"expected bytes, got {type(value).__name__}")
        if exact is not None and len(value) != exact:
            raise WireError(f"expected {exact} bytes, got {len(value)}")
        if max_len is not None and len(value) > max_len:
            raise WireError(f"{len(value)} bytes exceed the limit of {max_len}")
        return value if view or isinstance(value, bytes) else bytes(value)

    return check


def int_field(lo: int = 0, hi: int = 2**63 - 1) -> Check:
    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise WireError(f"expected an integer, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise WireError(f"integer {value} outside [{lo}, {hi}]")
        return value

    return check


def number_field(lo: float, hi: float) -> Check:
    """An int or a finite float within bounds, returned as float."""

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WireError(f"expected a number, got {type(value).__name__}")
        if not lo <= value <= hi:  # also refuses NaN
            raise WireError(f"number {value} outside [{lo}, {hi}]")
        return float(value)

    return check


def bool_field() -> Check:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise WireError(f"expected a boolean, got {type(value).__name__}")
        return value

    return check


def str_field(max_len: int = 256) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise WireError(f"expected text, got {type(value).__name__}")
        if len(value) > max_len:
            raise WireError(f"text of {len(value)} characters exceeds {max_len}")
        return value

    return check


def list_of(item: Check, max_items: int) -> Check:
    def check(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise WireError(f"expected a list, got {type(value).__name__}")
        if len(value) > max_items:
            raise WireError(f"list of {len(value)} items exceeds {max_items}")
        return [item(v) for v in value]

    return check


def optional(inner: Check) -> Check:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def map_of(fields: Mapping[str, Check], *, optional_keys: frozenset[str] = frozenset()) -> Check:
    """A map with exactly the declared keys (optional ones may be absent)."""

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise WireError(f"expected a map, got {type(value).__name__}")
        return check_fields(value, fields, optional_keys)

    return check


def load_map(
    payload: Buffer, what: str, *, undecodable: str | None = None, views: bool = False
) -> dict[Any, Any]:
    """CBOR that must decode to a map; raises only `WireError`, whatever the bytes.

    `what` names the thing in errors; `undecodable` overrides it for garbage. With
    `views`, big byte strings come as views of `payload` (see `bytes_field`).
    """
    try:
        raw = loads_map(payload, views=views)
    except Exception as exc:  # cbor2 raises many types on garbage; all mean the same here
        raise WireError(f"undecodable {undecodable or what}: {type(exc).__name__}") from None
    if not isinstance(raw, dict):
        article = "an" if what[:1] in ("a", "e", "i", "o", "u") else "a"
        raise WireError(f"{article} {what} must be a map, got {type(raw).__name__}")
    return raw


def check_fields(
    value: dict[Any, Any], fields: Mapping[str, Check], optional_keys: frozenset[str] = frozenset()
) -> dict[str, Any]:
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise WireError(f"unknown field {unknown[0]!r}")
    out: dict[str, Any] = {}
    for name, check in fields.items():
        if name not in value:
            if name in optional_keys:
                out[name] = None
                continue
            raise WireError(f"missing field {name!r}")
        try:
            out[name] = check(value[name])
        except WireError as exc:
            raise WireError(f"field {name!r}: {exc}") from None
    return out


Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class WireField:
    """How one attribute travels: checked on the way in, converted both ways.

    A conversion of None sends or keeps the value as it is, which most fields do.
    """

    check: Check
    to_wire: Convert | None = None
    from_wire: Convert | None = None

    def encode(self, value: Any) -> Any:
        return value if self.to_wire is None else self.to_wire(value)

    def decode(self, checked: Any) -> Any:
        return checked if self.from_wire is None else self.from_wire(checked)

    def or_none(self) -> WireField:
        """The same field, which may also be None (sent as CBOR null)."""
        to_wire, from_wire = self.to_wire, self.from_wire
        return WireField(
            optional(self.check),
            None if to_wire is None else lambda v: None if v is None else to_wire(v),
            None if from_wire is None else lambda v: None if v is None else from_wire(v),
        )

    def many(self, max_items: int) -> WireField:
        """A tuple of such values, sent as a list of at most `max_items`."""
        to_wire, from_wire = self.to_wire or _same, self.from_wire or _same
        return WireField(
            list_of(self.check, max_items),
            lambda values: [to_wire(v) for v in values],
            lambda values: tuple(from_wire(v) for v in values),
        )


def _same(value: Any) -> Any:
    return value
