"""A home router: NAT with nftables, and (home A) a real miniupnpd that can be
stopped, restarted, made to forget its mappings or to refuse a port.

The Debian package's nft_init.sh is broken, so the ruleset is ours: the
chains are those miniupnpd 2.3.1 fills by default. Unsolicited traffic from
the WAN is dropped, as a home router does, so a home without UPnP is reached
only through a relay or a hole punch.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from netbed import namespaces
from netbed.plan import UPNP_HTTP_PORT

WAN_IF = "wan"
LAN_IF = "lan"

RULESET = f"""
table inet filter {{
    chain input {{
        type filter hook input priority 0; policy accept;
        iifname "{WAN_IF}" ct state established,related accept
        iifname "{WAN_IF}" meta l4proto icmp accept
        iifname "{WAN_IF}" drop
    }}
    chain forward {{
        type filter hook forward priority 0; policy accept;
        ct state established,related accept
        iifname "{WAN_IF}" jump miniupnpd
        iifname "{WAN_IF}" drop
    }}
    chain miniupnpd {{
    }}
    chain prerouting {{
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }}
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd
        oifname "{WAN_IF}" masquerade
    }}
    chain prerouting_miniupnpd {{
    }}
    chain postrouting_miniupnpd {{
    }}
}}
"""
# The chains where miniupnpd keeps its mappings: flushing them is "the router forgot".
UPNP_CHAINS = ("miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd")


def start_nat(ns: str) -> None:
    """Forward and masquerade in router namespace `ns`."""
    namespaces.run(namespaces.in_ns(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
    namespaces.run(namespaces.in_ns(ns, ["nft", "-f", "-"]), input=RULESET)


def daemon_config(
    wan_address: str, lan_net: str, rules: tuple[str, ...], lease_file: str, upnp: bool = True
) -> str:
    """A miniupnpd configuration: UPnP IGD and NAT-PMP on the LAN side only.

    `rules` come before the default permission (any LAN host may map any port
    above 1023), so a `deny` rule among them makes the router refuse.
    """
    lines = [
        f"ext_ifname={WAN_IF}",
        f"listening_ip={LAN_IF}",
        f"ext_ip={wan_address}",
        f"http_port={UPNP_HTTP_PORT}",
        "enable_natpmp=yes",
        f"enable_upnp={'yes' if upnp else 'no'}",
        "secure_mode=yes",
        "system_uptime=yes",
        f"lease_file={lease_file}",
        *rules,
        f"allow 1024-65535 {lan_net}.0/24 1024-65535",
        "deny 0-65535 0.0.0.0/0 0-65535",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class UpnpDaemon:
    """miniupnpd in a router namespace, run in the foreground and tracked by PID."""

    ns: str
    wan_address: str
    lan_net: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "miniupnpd.log"

    def start(self, rules: tuple[str, ...] = (), *, upnp: bool = True) -> None:
        """Start the daemon; `rules` are extra permission lines (e.g. `deny 7400-7400 ...`);
        with `upnp` False it offers NAT-PMP alone."""
        if self.process is not None:
            raise namespaces.TestbedError("miniupnpd already runs")
        config = self.workdir / "miniupnpd.conf"
        leases = str(self.workdir / "leases")
        config.write_text(daemon_config(self.wan_address, self.lan_net, rules, leases, upnp))
        command = ["miniupnpd", "-d", "-f", str(config), "-P", str(self.workdir / "pid")]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                namespaces.in_ns(self.ns, command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL); the kernel keeps its rules."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _flush(self) -> None:
        for chain in UPNP_CHAINS:
            flush = ["nft", "flush", "chain", "inet", "filter", chain]
            namespaces.run(namespaces.in_ns(self.ns, flush))

    def restart(
        self, *, forget: bool = True, rules: tuple[str, ...] = (), upnp: bool = True
    ) -> None:
        """Restart as a router reboot does: the kernel's rules go, and the daemon
        restores the mappings from its lease file unless it must `forget` them.
        `rules` are the new extra permission lines; `upnp` False leaves NAT-PMP alone."""
        self.stop()
        self._flush()
        if forget:
            (self.workdir / "leases").unlink(missing_ok=True)
        self.start(rules, upnp=upnp)

    def ruleset(self) -> str:
        """The router's nft ruleset as text: where a live mapping shows as a DNAT rule."""
        return namespaces.run(namespaces.in_ns(self.ns, ["nft", "list", "ruleset"]))

    def mapped_ports(self) -> set[int]:
        """The external TCP ports the router forwards now, read from its DNAT rules."""
        ports = set()
        for line in self.ruleset().splitlines():
            words = line.split()
            if "dnat" in words and "dport" in words:
                ports.add(int(words[words.index("dport") + 1]))
        return ports
