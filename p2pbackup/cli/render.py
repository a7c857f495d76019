"""How the peer's answers read on a terminal: one summary per command, without `--json`.

Each takes the answer's map, the same one `--json` prints, so what a person
reads and what a script reads cannot drift apart.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from p2pbackup.base.sizes import format_size

Result = dict[str, Any]


# A byte of a file name that is not UTF-8, as Python holds it (PEP 383), or any other
# lone surrogate: a terminal cannot be sent either.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the file name's own byte
    return char.encode("unicode_escape").decode("ascii")


def shown(name: str) -> str:
    """A file name as one line shows it: a byte that is not UTF-8 as \\xNN, a control
    character escaped (a newline in a name split the listing)."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else _escaped(c) for c in name)


def printable(text: str) -> str:
    """`text` with the bytes of non-UTF-8 file names escaped, lines kept: printing the
    surrogates that hold them would fail."""
    return _SURROGATE.sub(lambda found: _escaped(found.group()), text)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def table_text(r: Result, width: int) -> str:
    """One `key value` line per field: status and simulation summaries."""
    return "\n".join(f"{key:{width}} {value}" for key, value in r.items())


def init_text(r: Result) -> str:
    lines = [f"initialised {r['home']}", f"node id {r['node_id']}"]
    mesh = str(r.get("mesh"))
    if mesh == "open":
        lines.append("an open mesh: anyone may join")
    elif r.get("founded"):
        lines.append(f"founded mesh {mesh[:16]}; `invite` lets others join")
    elif r.get("joined"):
        lines.append(f"joined mesh {mesh[:16]}")
    elif "mesh" in r:
        lines.append("the mesh comes from the first member `serve --bootstrap` meets")
    if "recovery_phrase" in r:
        lines += [
            "",
            "Recovery phrase (shown once; write it down and keep it safe):",
            "",
            f"    {r['recovery_phrase']}",
            "",
            "With these words alone, `init --recover` on a new machine gets every backup back.",
        ]
    return "\n".join(lines)


def age(seconds: float) -> str:
    """How long ago, in the largest whole unit: "just now", "40 s ago", "3 days ago"."""
    if seconds < 1:
        return "just now"
    return f"{duration(seconds)} ago"


def duration(seconds: float) -> str:
    """A span of time in its largest whole unit: "40 s", "3 min", "2 h", "1 day"."""
    for unit, size in (("day", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            whole = int(seconds // size)
            return count(whole, unit) if unit == "day" else f"{whole} {unit}"
    return f"{int(seconds)} s"


# Labels where the field's own name would read badly.
_LABELS = {"routing_table_size": "peers known", "pid": "process id"}


def _is_size(key: str) -> bool:
    """Fields that count bytes, whatever their number: shown in KiB, MiB, GiB."""
    return (
        key in ("capacity", "free") or key.endswith(("bytes", "_free")) or key.startswith("bytes")
    )


def _value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, int) and _is_size(key):
        return format_size(value)
    if isinstance(value, int | float) and key.endswith("seconds"):
        return duration(value)
    return str(value)


def fields_text(r: Result, indent: str = "") -> str:
    """One aligned `label  value` line per field; a map's fields indented under its label.

    Sizes read in binary units and spans of time in words, by the field's name,
    so fields a newer peer adds read right without a change here."""
    shown = {k: v for k, v in r.items() if not k.endswith("_human")}
    width = max((len(_LABELS.get(k, k)) for k in shown), default=0)
    lines = []
    for key, value in shown.items():
        label = _LABELS.get(key, key).replace("_", " ")
        if isinstance(value, dict):
            lines += [f"{indent}{label}", fields_text(value, indent + "  ")]
        else:
            lines.append(f"{indent}{label:{width}}  {_value(key, value)}")
    return "\n".join(lines)


def status_text(r: Result) -> str:
    """The peer's fields, then one line on how others reach it."""
    reachability = r.get("reachability")
    text = fields_text({k: v for k, v in r.items() if k != "reachability"})
    if not isinstance(reachability, dict):
        return text
    return f"{text}\n{reachability.get('detail') or reachability.get('state')}"


def peers_text(r: Result) -> str:
    """Peers heard from lately first; those unheard past `quiet_after` apart, as maybe gone."""
    if not r["peers"]:
        return "no known peers"
    quiet_after = r.get("quiet_after") or float("inf")

    def is_quiet(p: Result) -> bool:
        ago = p.get("seen_seconds_ago")
        return ago is not None and ago > quiet_after

    def line(p: Result) -> str:
        ago = p.get("seen_seconds_ago")
        seen = "unknown" if ago is None else age(ago)
        return f"{p['node_id'][:16]:18}{p['address']:24}{seen}"

    recent = sorted((p for p in r["peers"] if not is_quiet(p)), key=_ago)
    quiet = sorted((p for p in r["peers"] if is_quiet(p)), key=_ago)
    lines = [f"{'NODE ID':18}{'ADDRESS':24}LAST SEEN", *map(line, recent)]
    if quiet:
        lines += [
            "",
            f"not heard from in over {duration(quiet_after)} (may have stopped):",
            *map(line, quiet),
        ]
    lines += ["", f"{count(len(recent), 'peer')} heard from lately, {len(quiet)} quiet"]
    return "\n".join(lines)


def _ago(p: Result) -> float:
    ago = p.get("seen_seconds_ago")
    return float("inf") if ago is None else float(ago)


def backup_text(r: Result) -> str:
    return (
        f"snapshot {r['short_id']} saved: {r['files']} files, {format_size(r['bytes'])}; "
        f"{r['files_unchanged']} unchanged, {r['chunks_new']} new chunks "
        f"({r['chunks_reused']} reused), {format_size(r['bytes_sent'])} sent to peers "
        f"in {r['seconds']:.1f}s"
    )


def short_packs_text(short: Result) -> str:
    """What a backup says of the packs it placed with fewer than n shares."""
    their = "its" if short["packs"] == 1 else "their"
    return (
        f"{count(short['packs'], 'pack')} placed short of {their} {short['n']} shares (the "
        f"fewest got {short['fewest_shares']}): too few peers took them now; holders add "
        "the missing shares at their next audits, or run `repair` once the peers are up; "
        "`check` shows them as degraded until then"
    )


def snapshots_text(r: Result) -> str:
    if not r["snapshots"]:
        return "no snapshots yet"
    lines = [f"{'ID':10}{'TIME':21}{'HOST':16}{'FILES':>8} {'SIZE':>10}  PATHS"]
    for s in r["snapshots"]:
        tags = f"  [{', '.join(s['tags'])}]" if s["tags"] else ""
        lines.append(
            f"{s['short_id']:10}{when(s['time']):21}{s['host'][:15]:16}{s['files']:>8} "
            f"{format_size(s['bytes']):>10}  {', '.join(map(shown, s['paths']))}{tags}"
        )
    return "\n".join(lines)


# As `ls -l` marks them.
_TYPE_LETTER = {
    "dir": "d",
    "symlink": "l",
    "fifo": "p",
    "socket": "s",
    "char_device": "c",
    "block_device": "b",
}


def ls_text(r: Result) -> str:
    lines = []
    for e in r["entries"]:
        kind = _TYPE_LETTER.get(e["type"], "-")
        target = f" -> {shown(e['target'])}" if "target" in e else ""
        lines.append(
            f"{kind}{e['mode'] & 0o7777:04o} {e['size']:>12} {when(e['mtime'])}  "
            f"{shown(e['path'])}{target}"
        )
    return "\n".join(lines) or "nothing matches"


def restore_text(r: Result) -> str:
    return (
        f"restored {count(r['files_restored'], 'file')}, {format_size(r['bytes'])} "
        f"in {r['seconds']:.1f}s" + (f"; {r['files_failed']} failed" if r["files_failed"] else "")
    )


def check_text(r: Result) -> str:
    text = (
        f"{count(r['packs'], 'pack')} in {count(r['snapshots'], 'snapshot')}: "
        f"{r['healthy']} with every share, "
        f"{r['degraded']} degraded, {r['unrecoverable']} unrecoverable; "
        f"fewest live shares {r['min_live_shares']}"
    )
    if "chunks_read" in r:
        text += f"\n{r['chunks_read']} chunks read and verified, {len(r['chunk_errors'])} errors"
    for error in r.get("index_errors", [])[:5]:
        text += f"\nunreadable index: {error}"
    hung = r.get("hung_peers", [])
    if hung:
        named = ", ".join(node_id[:16] for node_id in hung[:5]) + (", ..." if len(hung) > 5 else "")
        text += (
            f"\n{count(len(hung), 'peer')} answered nothing (hung, asleep or cut off): {named}; "
            f"{'its' if len(hung) == 1 else 'their'} shares counted as missing"
        )
    return text


def repair_text(r: Result) -> str:
    return check_text(r) + f"\nrebuilt and placed {r['shares_rebuilt']} shares"


def forget_text(r: Result) -> str:
    verb = "would forget" if r["dry_run"] else "forgot"
    lines = [f"keep {count(len(r['keep']), 'snapshot')}, {verb} {len(r['forget'])}"]
    for s in r["keep"]:
        lines.append(f"  keep   {s['short_id']}  {when(s['time'])}  {', '.join(s['reasons'])}")
    for s in r["forget"]:
        lines.append(f"  forget {s['short_id']}  {when(s['time'])}")
    if "prune" in r:
        lines.append(prune_text(r["prune"]))
    return "\n".join(lines)


def prune_text(r: Result) -> str:
    would = r["dry_run"]
    kept = count(r["packs_kept"], "pack")
    lines = [f"{kept} kept whole for {count(r['snapshots'], 'snapshot')}"]
    if r["packs_repacked"]:
        verb = "would repack" if would else "repacked"
        moved = format_size(r["bytes_repacked"])
        into = "" if would else f" into {count(r['packs_written'], 'new pack')}"
        repacked = count(r["packs_repacked"], "mostly unused pack")
        lines.append(f"{verb} {repacked} ({moved} in use){into}")
    if would:
        lines.append(f"would release {count(r['packs_released'], 'pack')}")
    else:
        lines.append(
            f"released {count(r['packs_released'], 'pack')} "
            f"({count(r['shares_dropped'], 'share')} dropped at "
            "once; the rest go when their leases run out)"
        )
    return "\n".join(lines)


def record_put_text(r: Result) -> str:
    return f"stored {r['key']} seq {r['seq']} on {r['acks']} peers"


def record_get_text(r: Result) -> str:
    return json.dumps(r)
