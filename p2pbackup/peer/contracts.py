"""The edge between typed values and the plain maps another process sends or reads.

Requests and frames arrive as CBOR (or JSON) maps from another process: each
field is checked here once, so a malformed one is refused with a one-line
`ContractError` instead of failing somewhere deep inside as a traceback.
Answers go the other way: typed dataclasses inside, plain maps only where
they leave the process, in the field order the socket, the pipe and
`--json` have always shown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from p2pbackup.errors import P2PBackupError

Args = Mapping[str, Any]
# Field options of a result dataclass for `plain`.
OMIT_NONE: Mapping[str, bool] = {"omit_none": True}  # left out when None
FLATTEN: Mapping[str, bool] = {"flatten": True}  # a map whose keys join the parent's


class ContractError(P2PBackupError):
    """A request or frame from another process lacks a field or holds a wrong one."""


def text(args: Args, name: str) -> str:
    """A required, non-empty text field."""
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise ContractError(f"missing `{name}`")
    return value


def strings(args: Args, name: str) -> tuple[str, ...]:
    """An optional list of text, empty when absent."""
    value = args.get(name)
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ContractError(f"{name} must be a list of text")
    return tuple(value)


def whole(args: Args, name: str) -> int:
    """An optional count of at least 0, 0 when absent."""
    value = args.get(name) or 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ContractError(f"{name} must be a whole number of at least 0")
    return value


def raw(args: Args, name: str, refusal: str, size: int | None = None) -> bytes:
    """A required byte string (of exactly `size` bytes, if given); `refusal` otherwise."""
    value = args.get(name)
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise ContractError(refusal)
    return value


def plain(value: Any) -> Any:
    """`value` as the maps, lists and scalars CBOR and JSON carry."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            if item is None and field.metadata.get("omit_none"):
                continue
            if field.metadata.get("flatten"):
                out.update(plain(item))
            else:
                out[field.name] = plain(item)
        return out
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value
