"""`status` and `peers` as a person reads them: sizes, ages, and who may be gone."""

from __future__ import annotations

import os

from p2pbackup.cli.render import age, ls_text, peers_text, printable, status_text

STATUS = {
    "node_id": "ab" * 20,
    "listen": "127.0.0.1:7400",
    "pid": 4242,
    "routing_table_size": 3,
    "joined": True,
    "bytes_used": 3 * 2**20,
    "capacity": 20 * 2**30,
    "capacity_human": "20 GiB",
    "disk_free": 512 * 2**20,  # a field a newer peer adds reads right too
    "maintenance": {"rounds": 2, "repair_bytes": 1536},
    "owner": None,
}


def test_status_is_aligned_text_with_sizes_not_a_python_dict() -> None:
    text = status_text(STATUS)
    assert "{" not in text and "True" not in text
    lines = text.splitlines()
    top = [line for line in lines if not line.startswith(" ") and line != "maintenance"]
    column = len("peers known  ")  # the longest label, then two spaces
    assert {line[:column].rstrip(): line[column:] for line in top} == {
        "node id": "ab" * 20,
        "listen": "127.0.0.1:7400",
        "process id": "4242",
        "peers known": "3",
        "joined": "yes",
        "bytes used": "3 MiB",
        "capacity": "20 GiB",
        "disk free": "512 MiB",
        "owner": "-",
    }
    assert lines[lines.index("maintenance") + 1 :] == [
        "  rounds        2",
        "  repair bytes  1.5 KiB",
        "owner        -",
    ]


def test_ages_read_in_their_largest_whole_unit() -> None:
    assert [age(s) for s in (0.2, 40, 200, 7300, 86_400, 3 * 86_400)] == [
        "just now",
        "40 s ago",
        "3 min ago",
        "2 h ago",
        "1 day ago",
        "3 days ago",
    ]


def test_peers_show_when_each_was_last_seen_and_set_apart_the_quiet_ones() -> None:
    listing = {
        "peers": [
            {"node_id": "11" * 20, "address": "10.0.0.1:7400", "seen_seconds_ago": 9000.0},
            {"node_id": "22" * 20, "address": "10.0.0.2:7400", "seen_seconds_ago": 12.0},
        ],
        "quiet_after": 7200.0,
    }
    lines = peers_text(listing).splitlines()
    assert lines[0].split() == ["NODE", "ID", "ADDRESS", "LAST", "SEEN"]
    assert lines[1].split() == ["2222222222222222", "10.0.0.2:7400", "12", "s", "ago"]
    gone = lines.index("not heard from in over 2 h (may have stopped):")
    assert lines[gone + 1].split() == ["1111111111111111", "10.0.0.1:7400", "2", "h", "ago"]
    assert lines[-1] == "1 peer heard from lately, 1 quiet"


def test_no_peers_says_so() -> None:
    assert peers_text({"peers": [], "quiet_after": 7200.0}) == "no known peers"


def test_a_listing_shows_each_name_on_its_own_line_escaped_where_it_must_be() -> None:
    odd = os.fsdecode(b"caf\xe9\nnote.txt")  # a Latin-1 byte and a newline in one name
    entry = {"type": "file", "mode": 0o644, "size": 3, "mtime": 0.0}
    listing = {"entries": [{**entry, "path": odd}, {**entry, "path": "d/é ok.txt"}]}
    lines = ls_text(listing).splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("caf\\xe9\\nnote.txt") and lines[1].endswith("d/é ok.txt")
    assert printable(f"error: {odd}: gone\nnext") == "error: caf\\xe9\nnote.txt: gone\nnext"
    "".join(lines).encode()  # a terminal can be sent every character
