"""Typed requests and results against the maps the control socket has always carried."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from p2pbackup.peer.contracts import ContractError, plain
from p2pbackup.peer.requests import (
    BackupRequest,
    ForgetRequest,
    PruneRequest,
    RecordGetRequest,
    RecordPutRequest,
    RestoreRequest,
)
from p2pbackup.peer.results import (
    BackupResult,
    HealthReport,
    PeerState,
    PruneResult,
    RecordFound,
    StatusResult,
)


def test_requests_send_the_same_bytes_as_the_maps_before_them() -> None:
    backup = BackupRequest(("/data",), ("t",), ("*.tmp",))
    sent = {"paths": ["/data"], "tags": ["t"], "excludes": ["*.tmp"]}
    assert cbor2.dumps(backup.to_args()) == cbor2.dumps(sent)
    assert BackupRequest.from_args(sent) == backup
    forget = ForgetRequest(("abc",), keep_daily=7, prune=True, repack_below=0.25)
    assert list(forget.to_args()) == [
        "snapshots",
        *("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"),
        *("keep_tags", "prune", "repack_below", "dry_run"),
    ]
    prune = PruneRequest(True, 0.5)
    assert cbor2.dumps(prune.to_args()) == cbor2.dumps({"dry_run": True, "repack_below": 0.5})
    for request in (forget.__class__(keep_last=2), prune, RecordGetRequest(bytes(20))):
        assert type(request).from_args(request.to_args()) == request


@pytest.mark.parametrize(
    ("kind", "args", "error"),
    [
        (BackupRequest, {}, "name at least one path"),
        (BackupRequest, {"paths": "/data"}, "paths must be a list of text"),
        (RestoreRequest, {"snapshot": "latest", "target": "out"}, "must be an absolute path"),
        (RestoreRequest, {"target": "/out"}, "missing `snapshot`"),
        (ForgetRequest, {}, "forget never drops everything"),
        (ForgetRequest, {"snapshots": ["a"], "keep_last": 1}, "not both"),
        (ForgetRequest, {"keep_last": -1}, "keep_last must be a whole number"),
        (ForgetRequest, {"keep_last": True}, "keep_last must be a whole number"),
        (PruneRequest, {"repack_below": 2}, "fraction from 0"),
        (RecordPutRequest, {"name": "n", "value": b"v"}, "needs bytes `name` and `value`"),
        (RecordGetRequest, {"key": bytes(19)}, "needs a 20-byte `key`"),
    ],
)
def test_a_wrong_field_is_refused_in_one_line(kind: Any, args: dict[str, Any], error: str) -> None:
    with pytest.raises(ContractError, match=error):
        kind.from_args(args)


def test_results_keep_their_keys_in_the_order_json_showed() -> None:
    backup = BackupResult("ab", "ab", None, {"files": 3, "bytes": 9}, None, 1.5)
    assert plain(backup) == {"snapshot_id": "ab", "short_id": "ab", "parent": None} | {
        "files": 3,
        "bytes": 9,
        "seconds": 1.5,
    }
    assert list(plain(backup)) == ["snapshot_id", "short_id", "parent", "files", "bytes", "seconds"]
    with_process = BackupResult("ab", "ab", "cd", {}, {"cpu_seconds": 1.0}, 2.0)
    assert list(plain(with_process))[-2:] == ["engine_process", "seconds"]

    health = HealthReport(1, 2, 2, 0, 0, 10, [], [], shares_rebuilt=4, seconds=3.0)
    assert list(plain(health)) == [
        *("snapshots", "packs", "healthy", "degraded", "unrecoverable", "min_live_shares"),
        *("unrecoverable_packs", "index_errors", "shares_rebuilt", "hung_peers", "seconds"),
    ]
    pruned = plain(PruneResult(False, 1, 2, 3, 4, 5, 6, 7, 0.5))
    assert list(pruned)[:2] == ["dry_run", "snapshots"] and pruned["seconds"] == 0.5
    assert plain(RecordFound(found=False)) == {"found": False}
    status = StatusResult(
        PeerState("id", "h:1", 7), 1, 2, True, 3, 4, 5, "5 B", 1, "1 B", 9, {}, None
    )
    assert list(plain(status))[:4] == ["node_id", "listen", "pid", "routing_table_size"]
