"""One testbed per test module, and small helpers to probe who reaches whom."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netbed import Host, Testbed, skip_reason

ROOT = Path(__file__).resolve().parents[2]


def code_env(**extra: str) -> dict[str, str]:
    """The environment for a command run on a testbed host: this checkout's code."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def skip_without_testbed() -> None:
    """Skip, saying what is missing, where the testbed cannot be built: a test that
    builds its own must not fail for a package the machine lacks."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def bed() -> Iterator[Testbed]:
    skip_without_testbed()
    with Testbed.build() as built:
        yield built


def probe_server(host: Host, port: int) -> subprocess.Popen[bytes]:
    """A probe listening on `host`:`port`, once it is ready."""
    process = host.spawn(
        [sys.executable, "-m", "netbed.probe", "serve", str(port)],
        env=code_env(),
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    return process


def reach(source: Host, host: str, port: int) -> str | None:
    """The address `host`:`port` sees `source` come from, or None if it cannot connect."""
    done = source.run(
        [sys.executable, "-m", "netbed.probe", "connect", host, str(port)],
        check=False,
        env=code_env(),
    )
    if done.returncode != 0:
        return None
    return done.stdout.strip().rsplit(":", 1)[0]
