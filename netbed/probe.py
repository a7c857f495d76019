"""A tiny TCP probe to run on testbed hosts: who reaches whom, seen from where.

`python -m netbed.probe serve PORT` listens on every address, prints
`ready`, and answers each connection with the address it came from.
`python -m netbed.probe connect HOST PORT` prints that answer, or exits 1
with the reason when it cannot connect within the timeout.
`mcast-listen` prints the source of the first datagram to the mDNS group;
`mcast-send` sends one.
"""

from __future__ import annotations

import argparse
import socket
import sys

CONNECT_TIMEOUT = 1.0
# The mDNS group, on a port of its own so no mDNS responder takes the probe's datagram.
GROUP, GROUP_PORT = "224.0.0.251", 5399
# How long `mcast-listen` waits for a datagram (a bound for a broken run).
LISTEN_TIMEOUT = 10.0


def serve(port: int) -> None:
    with socket.create_server(("0.0.0.0", port), reuse_port=False) as server:
        print("ready", flush=True)
        while True:
            connection, (host, peer_port) = server.accept()
            with connection:
                connection.sendall(f"{host}:{peer_port}\n".encode())


def connect(host: str, port: int, timeout: float) -> int:
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            seen = connection.makefile().readline().strip()
    except OSError as exc:
        print(f"cannot connect to {host}:{port}: {exc}", file=sys.stderr)
        return 1
    print(seen)
    return 0


def multicast_listen() -> None:
    """Print the source of the first datagram sent to the group (`nothing` if none
    comes within LISTEN_TIMEOUT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", GROUP_PORT))
        membership = socket.inet_aton(GROUP) + socket.inet_aton("0.0.0.0")
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.settimeout(LISTEN_TIMEOUT)
        print("ready", flush=True)
        try:
            _, (host, _) = sock.recvfrom(64)
        except TimeoutError:
            host = "nothing"
        print(host, flush=True)


def multicast_send() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.sendto(b"hello", (GROUP, GROUP_PORT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netbed.probe")
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve")
    serving.add_argument("port", type=int)
    connecting = commands.add_parser("connect")
    connecting.add_argument("host")
    connecting.add_argument("port", type=int)
    connecting.add_argument("--timeout", type=float, default=CONNECT_TIMEOUT)
    commands.add_parser("mcast-listen")
    commands.add_parser("mcast-send")
    args = parser.parse_args(argv)
    if args.command == "mcast-listen":
        multicast_listen()
        return 0
    if args.command == "mcast-send":
        multicast_send()
        return 0
    if args.command == "serve":
        serve(args.port)
        return 0
    return connect(args.host, args.port, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
