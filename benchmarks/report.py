"""The suite's report: tables in Markdown, each target of issue 10 and whether it holds, plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plots", "render", "targets"]

_ASYNCRAWL = ("asyncrawl (library)", "asyncrawl (CLI)")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """``(target, measured, goal, holds)`` for each speed target the results cover."""
    rows: list[tuple[str, str, str, bool | None]] = []
    calm = results.get("calm_target")
    if calm:
        ratio = calm["ratio"]
        rows.append(
            (
                "calm: CLI wall time / plain aiohttp script (subprocesses, median of "
                f"{calm['runs']} alternating)",
                f"{ratio:.2f}x ({calm['median_wall']['asyncrawl (CLI)']:.2f} s vs "
                f"{calm['median_wall']['aiohttp+semaphore']:.2f} s)",
                "<= 1.10x",
                ratio <= 1.10,
            )
        )
        start = calm["startup_ms"]["asyncrawl (CLI)"]
        end = calm["teardown_ms"]["asyncrawl (CLI)"]
        plain = calm["startup_ms"]["aiohttp+semaphore"] + calm["teardown_ms"]["aiohttp+semaphore"]
        rows.append(
            (
                "calm: CLI start-up + tear-down (process start to first request, last answer "
                "to exit)",
                f"{start:.0f} + {end:.0f} = {start + end:.0f} ms (plain script: {plain:.0f} ms)",
                "<= 300 ms",
                start + end <= 300,
            )
        )
    profiles = results.get("profiles") or []
    tight = [p for p in profiles if p["profile"] == "faulty+limited"]
    if tight:
        ours = [p for p in tight if p["contender"] == "asyncrawl (library)"]
        cli = [p for p in tight if p["contender"] == "asyncrawl (CLI)"]
        clean_peers = [
            p
            for p in tight
            if p["contender"] not in _ASYNCRAWL
            and p["lost"] == 0
            and p["breaches"] == 0
            and p["failed"] == 0
        ]
        for mine in ours + cli:
            rows.append(
                (
                    f"faulty+limited: {mine['contender']} / floor, breaches, lost",
                    f"{mine['x_floor']:.2f}x ({mine['elapsed']:.1f} s vs floor "
                    f"{mine['floor']:.1f} s), {mine['breaches']} breaches, {mine['lost']} lost",
                    "<= 1.05x, 0, 0",
                    mine["x_floor"] <= 1.05 and mine["breaches"] == 0 and mine["lost"] == 0,
                )
            )
        if ours and clean_peers:
            best = min(clean_peers, key=lambda p: p["elapsed"])
            rows.append(
                (
                    "faulty+limited: asyncrawl (library) vs the fastest peer that loses, fails "
                    "and breaches nothing",
                    f"{ours[0]['elapsed']:.1f} s vs {best['contender']} {best['elapsed']:.1f} s",
                    "no slower",
                    ours[0]["elapsed"] <= best["elapsed"],
                )
            )
        elif ours:
            rows.append(
                (
                    "faulty+limited: asyncrawl vs the fastest clean peer",
                    "no peer finished with 0 lost, 0 failed and 0 breaches",
                    "no slower",
                    True,
                )
            )
    put = results.get("throughput")
    if put:
        rows.append(
            (
                "throughput: CLI client CPU per item / plain aiohttp doing the same output work",
                f"{put['cpu_ratio']:.2f}x ({put['asyncrawl (CLI)']['cpu_us_per_item']:.0f} vs "
                f"{put['plain output work']['cpu_us_per_item']:.0f} us/item, gzip level "
                f"{put['gzip_level']})",
                "<= 1.5x",
                put["cpu_ratio"] <= 1.5,
            )
        )
        rows.append(
            (
                "throughput: CLI items/s / plain aiohttp fetch+parse",
                f"{put['speed_ratio']:.2f}x ({put['asyncrawl (CLI)']['items_per_s']:.0f} vs "
                f"{put['plain fetch+parse']['items_per_s']:.0f} items/s)",
                ">= 0.7x",
                put["speed_ratio"] >= 0.7,
            )
        )
    engine = results.get("engine")
    if engine and "ratio" in engine:
        rows.append(
            (
                "engine alone / plain aiohttp + semaphore (requests/s)",
                f"{engine['ratio']:.2f}x",
                ">= 0.9x (goal)",
                engine["ratio"] >= 0.9,
            )
        )
    return rows


def render(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    machine = results["machine"]
    lines = [
        f"# asyncrawl benchmark ({'quick' if results['quick'] else 'full'})",
        "",
        f"Command: `{results['command']}`. Machine: {machine['cpus']} CPUs, "
        f"{machine['platform']}, Python {machine['python']}, load average at start "
        f"{machine['load_avg_at_start']}. Suite time: {results.get('suite_seconds', '?')} s.",
        "",
        "## Targets (issue 10)",
        "",
        "| target | measured | goal | holds |",
        "|---|---|---|---|",
    ]
    for name, measured, goal, holds in targets(results):
        verdict = "yes" if holds else "**no**" if holds is False else "-"
        lines.append(f"| {name} | {measured} | {goal} | {verdict} |")
    profiles = results.get("profiles") or []
    if profiles:
        lines += [
            "",
            "## Profiles",
            "",
            f"Concurrency {results['concurrency']}, per-attempt timeout "
            f"{results['timeout_s']:g} s, "
            f"{results['attempts']} attempts per item for every contender that takes such "
            "settings. `elapsed` is the crawl as the contender times it (the CLI: its process's "
            "wall time), `wall` the whole process; requests, resends and breaches are counted by "
            "the server; `x floor` is elapsed over the least time the workload can take (see "
            "docs/BENCHMARKS.md). Start-up: process start to the first request's arrival; "
            "tear-down: the last answer to the process's exit.",
            "",
            "| profile | contender | elapsed s | wall s | x floor | ok | no data | failed | lost | "
            "requests | resends | hedges | breaches | peak RSS MB | start-up ms | tear-down ms |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in profiles:
            lines.append(
                f"| {p['profile']} | {p['contender']} | {p['elapsed']:.2f} | {p['wall']:.2f} | "
                f"{_fmt(p['x_floor'])} | {p['ok']} | {p['no_data']} | {p['failed']} | "
                f"{p['lost']} | {p['requests']} | {p['resends']} | {_fmt(p['hedges'])} | "
                f"{p['breaches']} | {p['peak_rss_mb']:.0f} | {_fmt(p['startup_ms'], 0)} | "
                f"{_fmt(p['teardown_ms'], 0)} |"
            )
    put = results.get("throughput")
    if put:
        lines += [
            "",
            f"## Throughput ({put['items']} items, a static {put['body_bytes']} byte answer, "
            "concurrency 64, no rate limit)",
            "",
            "| contender | wall s | items/s | client CPU us/item | peak RSS MB |",
            "|---|---|---|---|---|",
        ]
        for name in ("plain fetch+parse", "plain output work", "asyncrawl (CLI)"):
            e = put[name]
            lines.append(
                f"| {name} | {e['wall_s']:.2f} | {e['items_per_s']:.0f} | "
                f"{e['cpu_us_per_item']:.0f} | {e['peak_rss_mb']:.0f} |"
            )
    scaled = results.get("scale")
    if scaled:
        lines += [
            "",
            f"## Scale (library, concurrency 64, window {scaled['window'][0]}/"
            f"{scaled['window'][1]:g}s, latency {scaled['latency_s']} s)",
            "",
            "| companies | items | elapsed s | items/s | peak RSS MB | bytes/item (marginal) |"
            " ok | lost | breaches |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for e in scaled["runs"]:
            lines.append(
                f"| {e['companies']} | {e['items']} | {e['elapsed_s']:.1f} | "
                f"{e['items_per_s']:.0f} | {e['peak_rss_mb']:.0f} | "
                f"{_fmt(e.get('bytes_per_item'))} | {e['ok']} | {e['lost']} | {e['breaches']} |"
            )
        bulk = scaled["bulk"]
        lines += [
            "",
            f"Engine, {bulk['items']:,} items from a generator (tiny answers): "
            f"{bulk['elapsed']:.1f} s, {bulk['items_per_s']:.0f} items/s, peak RSS "
            f"{bulk['peak_rss_mb']:.0f} MB, {bulk['cpu_us_per_item']:.0f} us CPU per item, ok "
            f"{bulk['ok']}, remaining {bulk['remaining']}.",
        ]
    engine = results.get("engine")
    if engine and "ratio" in engine:
        lines += ["", f"## Engine alone\n\n```\n{engine}\n```"]
    lines += ["", "## Settings of each contender", ""]
    for name, text in results["settings"].items():
        lines.append(f"- **{name}**: {text}")
    return "\n".join(lines) + "\n"


def plots(results: dict[str, Any], out: Path, *, suffix: str = "") -> list[Path]:
    """In-flight over time, elapsed per contender per profile, memory against companies."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed here: no plots (make benchmark installs it)")
        return []
    made: list[Path] = []
    flight = results.get("in_flight") or {}
    if flight:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for name, series in flight.items():
            ax.step(series["t"], series["in_flight"], where="post", label=name)
        ax.set_xlabel("seconds since the first request")
        ax.set_ylabel("requests in flight (server)")
        ax.set_title("calm profile: requests in flight, the old way vs asyncrawl")
        ax.legend()
        fig.tight_layout()
        made.append(_save(fig, out / f"in_flight{suffix}.png"))
        plt.close(fig)
    profiles = results.get("profiles") or []
    if profiles:
        names = list(dict.fromkeys(r["profile"] for r in profiles))
        contenders = list(dict.fromkeys(r["contender"] for r in profiles))
        fig, ax = plt.subplots(figsize=(10, 4.5))
        width = 0.8 / max(1, len(contenders))
        for index, contender in enumerate(contenders):
            xs, ys = [], []
            for position, profile in enumerate(names):
                match = [
                    r for r in profiles if r["profile"] == profile and r["contender"] == contender
                ]
                if match:
                    xs.append(position + index * width)
                    ys.append(match[0]["elapsed"])
            ax.bar(xs, ys, width=width, label=contender)
        floors = [next(r["floor"] for r in profiles if r["profile"] == p) for p in names]
        for position, floor in enumerate(floors):
            ax.hlines(floor, position - width / 2, position + 0.8 - width / 2, colors="black")
        ax.set_xticks([p + 0.4 - width / 2 for p in range(len(names))], names)
        ax.set_yscale("log")
        ax.set_ylabel("elapsed seconds (log); black line: floor")
        ax.set_title("elapsed per contender per profile")
        ax.legend(fontsize=8, ncols=2)
        fig.tight_layout()
        made.append(_save(fig, out / f"elapsed{suffix}.png"))
        plt.close(fig)
    scaled = results.get("scale")
    if scaled:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        xs = [e["companies"] for e in scaled["runs"]]
        ax.plot(xs, [e["peak_rss_mb"] for e in scaled["runs"]], marker="o")
        ax.set_xlabel("companies (8 items each)")
        ax.set_ylabel("peak RSS MB")
        ax.set_title("memory against companies (library)")
        ax.set_ylim(bottom=0)
        fig.tight_layout()
        made.append(_save(fig, out / f"memory{suffix}.png"))
        plt.close(fig)
    return made


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    return path
