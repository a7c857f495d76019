"""Why the testbed cannot be built here, if it cannot: for `pytest.skip`."""

from __future__ import annotations

import os
import shutil
import subprocess

from netbed.namespaces import PREFIX_STEM

TOOLS = {
    "ip": "iproute2",
    "nft": "nftables",
    "miniupnpd": "miniupnpd-nftables",
    "upnpc": "miniupnpc",
}


def skip_reason() -> str | None:
    """None when namespaces, NAT and miniupnpd are all available; else why not."""
    if os.geteuid() != 0:
        return "the NAT testbed needs root (network namespaces)"
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            return f"the NAT testbed needs `{tool}` (Debian package {package})"
    probe = f"{PREFIX_STEM}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None
