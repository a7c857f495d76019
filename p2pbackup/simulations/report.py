"""Write a simulation run's report folder: reproducible JSON, plots and a short markdown report.

The folder is meant to be diffed between runs, so everything except `timing.json` (and the
last line of `report.md`) depends only on the scenario result, never on the machine or clock.
Plots are optional (the `[sim]` extra): without matplotlib the figures and the report are
still written, and the report says how to get the plots.
"""

from __future__ import annotations

import gc
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WALL_FIELDS = ("wall_seconds", "sim_seconds_per_wall_second")
CLI_OPTIONS = ("peers", "lookups", "packs", "days")  # params `p2pbackup simulate` accepts
MB = 1_000_000
NO_PLOTS = "No plots: they need matplotlib, `pip install 'p2pbackup[sim]'`."


def gini(values: Sequence[float]) -> float:
    """Gini coefficient of `values`: 0 when all peers hold the same, near 1 when one holds all.

    One number that tells whether placement spreads storage fairly across the mesh.
    """
    total = float(sum(values))
    if not values or total <= 0:
        return 0.0
    ordered = sorted(values)
    n = len(ordered)
    weighted = sum(rank * value for rank, value in enumerate(ordered, start=1))
    return round(max(2.0 * weighted / (n * total) - (n + 1) / n, 0.0), 4)


def reproducible(result: dict[str, Any]) -> dict[str, Any]:
    """A copy of `result` without wall-clock fields, so equal seeds give equal files."""
    return {key: value for key, value in result.items() if key not in WALL_FIELDS}


class Timeline(NamedTuple):
    hours: list[float]
    x: list[float]
    label: str


Drawer = Callable[["Axes", dict[str, Any], Timeline], None]


class Plot(NamedTuple):
    name: str
    keys: tuple[str, ...]  # drawn when any of these has a non-null sample
    draw: Drawer
    min_samples: int = 1


def _present(values: Sequence[Any] | None) -> bool:
    """True when a series has at least one real sample worth plotting."""
    return any(v is not None and v != {} for v in values or ())


def timeline(series: dict[str, Any]) -> Timeline:
    """X values in simulated hours, or days for runs longer than 72 h so ticks stay readable."""
    length = max((len(v) for v in series.values() if isinstance(v, list)), default=0)
    hours = [float(h) for h in series.get("hours") or range(length)]
    if hours and max(hours) > 72:
        return Timeline(hours, [h / 24 for h in hours], "simulated days")
    return Timeline(hours, hours, "simulated hours")


def _floats(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _draw_live_shares(ax: Axes, result: dict[str, Any], t: Timeline) -> None:
    samples = result["series"]["live_share_counts"]
    counts = sorted({int(key) for sample in samples for key in sample or {}}, reverse=True)
    stacks = [[(sample or {}).get(str(c), 0) for sample in samples] for c in counts]
    ax.stackplot(t.x, stacks, labels=[f"{c} live shares" for c in counts])
    ax.set(title="Packs by number of live shares", ylabel="packs")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _draw_repair(ax: Axes, result: dict[str, Any], t: Timeline) -> None:
    cumulative = _floats(result["series"]["repair_bytes"])
    h = t.hours
    rates = [
        (b - a) / MB / max(h1 - h0, 1e-9)
        for a, b, h0, h1 in zip(cumulative, cumulative[1:], h, h[1:], strict=False)
    ]
    ax.stairs(rates, t.x[: len(rates) + 1], fill=True, alpha=0.8)
    ax.set(title="Repair bandwidth", ylabel="MB per simulated hour")


def _draw_lookups(ax: Axes, result: dict[str, Any], t: Timeline) -> None:
    series, blank = result["series"], [None] * len(t.x)
    hops = ax.plot(t.x, _floats(series.get("lookup_hops") or blank), "o-", label="hops")
    ax.set(title="Probe lookups", ylabel="mean hops")
    twin = ax.twinx()
    latency = _floats(series.get("lookup_latency_ms") or blank)
    ms = twin.plot(t.x, latency, "s--", color="C1", label="latency")
    twin.set_ylabel("mean latency (ms)")
    ax.legend(handles=hops + ms, loc="upper left")


def _draw_storage(ax: Axes, result: dict[str, Any], t: Timeline) -> None:
    held = sorted(result["storage_per_peer"], reverse=True)
    # One filled outline, not a bar per peer: 10,000 bars take seconds to draw.
    ax.stairs([b / MB for b in held], fill=True)
    ax.set(title=f"Storage per live peer (Gini {gini(held)})", ylabel="MB", xlabel="peer (sorted)")


def _line(key: str, title: str, ylabel: str, scale: float = 1.0) -> Drawer:
    """A drawer for a plain one-line series, scaled (e.g. fraction to percent)."""

    def draw(ax: Axes, result: dict[str, Any], t: Timeline) -> None:
        ax.plot(t.x, [v * scale for v in _floats(result["series"][key])])
        ax.set(title=title, ylabel=ylabel)

    return draw


def _plots() -> list[Plot]:
    """Every plot the report can hold, in the order the report lists them."""
    packs_lost = _line("packs_lost", "Packs lost", "packs (cumulative)")
    return [
        Plot("live_shares.png", ("live_share_counts",), _draw_live_shares),
        Plot("packs_lost.png", ("packs_lost",), packs_lost),
        Plot("restorable.png", ("restorable",), _line("restorable", "Restorable", "%", 100)),
        Plot("repair_bandwidth.png", ("repair_bytes",), _draw_repair, min_samples=2),
        Plot("lookups.png", ("lookup_hops", "lookup_latency_ms"), _draw_lookups),
        Plot("storage.png", ("storage_per_peer",), _draw_storage),
        Plot("live_peers.png", ("live_peers",), _line("live_peers", "Live peers", "peers")),
    ]


def load_pyplot() -> ModuleType | None:
    """matplotlib's pyplot on a file-only backend, or None when the `[sim]` extra is missing:
    plots are optional, the run's figures are not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def write_plots(result: dict[str, Any], out: Path, plt: ModuleType) -> list[Path]:
    """Render every plot whose data is present with `plt` (pyplot, see `load_pyplot`)."""
    # storage_per_peer sits beside the series but is looked up the same way.
    data = {**(result.get("series") or {}), "storage_per_peer": result.get("storage_per_peer")}
    t = timeline(result.get("series") or {})
    written = []
    for plot in _plots():
        present = [data[key] for key in plot.keys if _present(data.get(key))]
        if not any(len(values) >= plot.min_samples for values in present):
            continue
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
        ax.set_xlabel(t.label)
        plot.draw(ax, result, t)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        # No Software/date metadata, so equal inputs give byte-identical PNGs.
        fig.savefig(out / plot.name, dpi=100, metadata={"Software": None})
        plt.close(fig)
        written.append(out / plot.name)
    return written


def _fmt(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return str(value)


def _bytes(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"


def _duration(result: dict[str, Any]) -> str:
    hours = (result.get("series") or {}).get("hours") or []
    if len(hours) > 1:
        span = float(hours[-1]) - float(hours[0])
        return f"{span:g} simulated hours ({span / 24:.3g} days)"
    days = result.get("params", {}).get("days")
    return f"{days} simulated days" if days is not None else "an unrecorded simulated time"


def _command(result: dict[str, Any]) -> str:
    params = result.get("params", {})
    options = "".join(f" --{key} {params[key]}" for key in CLI_OPTIONS if key in params)
    return f"p2pbackup simulate {result['scenario']} --seed {result['seed']}{options}"


def _mean(values: Sequence[float | None]) -> float | None:
    real = [float(v) for v in values if v is not None]
    return sum(real) / len(real) if real else None


def _findings(result: dict[str, Any]) -> list[str]:
    """Bullet findings computed from the data, so the report says what the plots show."""
    series, metrics = result.get("series") or {}, result.get("metrics", {})
    found = []
    lost = metrics.get("packs_lost", (series.get("packs_lost") or [None])[-1])
    if lost is not None:
        found.append("No pack was lost." if lost == 0 else f"**Packs lost: {lost}.**")
    if "min_live_shares" in metrics and "k" in metrics:
        low, k = metrics["min_live_shares"], metrics["k"]
        verdict = "some pack fell below k" if low < k else "no pack fell below k"
        found.append(f"The fewest live shares of any pack was {low} (k = {k}): {verdict}.")
    if _present(series.get("restorable")):
        found.append(_lowest_restorable(series))
    if series.get("repair_bytes"):
        found.append(f"Repair moved {_bytes(float(series['repair_bytes'][-1]))} in total.")
    if result.get("storage_per_peer"):
        found.append(f"Storage Gini across live peers: {gini(result['storage_per_peer'])}.")
    hops = _mean(series.get("lookup_hops") or [])
    latency = _mean(series.get("lookup_latency_ms") or [])
    if hops is not None or latency is not None:
        found.append(
            f"Probe lookups took {'n/a' if hops is None else _fmt(hops)} hops and "
            f"{'n/a' if latency is None else f'{latency:.0f}'} ms on average."
        )
    return found + _model_findings(result.get("model"), lost)


def _lowest_restorable(series: dict[str, Any]) -> str:
    """When restores were hardest: the lowest share of restorable snapshots and its hour."""
    hours = timeline(series).hours
    samples = [(v, h) for v, h in zip(series["restorable"], hours, strict=False) if v is not None]
    low, hour = min(samples, key=lambda sample: sample[0])
    day = f" (day {hour / 24:.1f})" if hours[-1] > 72 else ""
    return f"Restore availability was lowest at hour {hour:g}{day}: {100 * float(low):.1f}%."


def _model_findings(model: dict[str, Any] | None, lost: Any) -> list[str]:
    """Set the analytic model beside the measurement; a disagreement must not be missed."""
    if not model:
        return []
    found = []
    if "expected_packs_lost" in model:
        found.append(
            f"The model expected {_fmt(model['expected_packs_lost'])} packs lost; "
            f"the run measured {lost if lost is not None else 'n/a'}."
        )
    if model.get("disagreement"):
        found.append(f"**Disagreement:** {model['disagreement']}")
    return found


def render_markdown(result: dict[str, Any], plots: Sequence[Path], *, plotted: bool = True) -> str:
    """The human report; only the final timing line varies between equal runs.

    Without `plotted` (no matplotlib), the plots section says how to get them.
    """
    params, metrics = result.get("params", {}), result.get("metrics", {})
    inline = ", ".join(f"{key} = {_fmt(params[key])}" for key in sorted(params)) or "defaults"
    lines = [
        f"# Simulation report: {result['scenario']}",
        "",
        f"Ran the **{result['scenario']}** scenario ({result.get('summary', 'no summary')}) "
        f"with seed {result['seed']} and {inline}, over {_duration(result)}. "
        f"Reproduce with `{_command(result)}`.",
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "| --- | --- |",
        *(f"| {key} | {_fmt(metrics[key])} |" for key in sorted(metrics)),
        "",
        "## What it showed",
        "",
        *(f"- {finding}" for finding in _findings(result)),
        "",
        "## Plots",
        "",
        *(f"![{path.stem.replace('_', ' ')}]({path.name})\n" for path in plots),
        *([] if plotted else [NO_PLOTS, ""]),
    ]
    timing = ", ".join(f"{key} = {_fmt(result[key])}" for key in WALL_FIELDS if key in result)
    lines.append(f"_Timing (not reproducible): {timing or 'not recorded'}._")
    return "\n".join(lines) + "\n"


def write_last_report(result: dict[str, Any], out: Path) -> None:
    """`write_report` as the process's last act. The world is garbage by now, millions
    of objects in cycles: frozen, the collector does not scan them again and again
    while the plotting library loads (half a minute after a 10,000-peer week)."""
    gc.freeze()
    write_report(result, out)


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    """Write result.json, timing.json, the plots and report.md into `out`; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    data, timing = out / "result.json", out / "timing.json"
    data.write_text(json.dumps(reproducible(result), indent=2, sort_keys=True) + "\n")
    wall = {key: result[key] for key in WALL_FIELDS if key in result}
    timing.write_text(json.dumps(wall, indent=2, sort_keys=True) + "\n")
    plt = load_pyplot()
    if plt is None:
        print(NO_PLOTS, file=sys.stderr)
    plots = [] if plt is None else write_plots(result, out, plt)
    report = out / "report.md"
    report.write_text(render_markdown(result, plots, plotted=plt is not None))
    return [data, timing, *plots, report]
