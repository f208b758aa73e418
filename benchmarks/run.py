"""The whole benchmark suite: ``python -m benchmarks.run [--quick]`` (or ``make benchmark``).

1. **Profiles** ``calm``, ``faulty``, ``limited``, ``faulty+limited`` against the OpenDART
   stand-in (one fresh server process per contender run), every contender in its own process
   (:mod:`benchmarks.contenders`); the old way on the small profiles only.
2. **Calm target**: the CLI against a plain aiohttp script, both as subprocesses, alternating.
3. **Throughput**: a static 24 KB OpenDART answer; the CLI end to end against plain aiohttp
   doing the same output work, and plain aiohttp fetching and parsing only.
4. **Scale**: 100, 1,000 and 2,700 companies through the library (peak RSS, bytes per item,
   items/s) and 100,000 items through the engine.
5. **Engine alone**: ``benchmarks/engine_overhead.py``.

Results go to ``benchmarks/results/results.json`` and ``results.md``, plots to
``benchmarks/results/*.png``; the report prints each target of issue 10 and whether it holds.
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from asyncrawl.testing.faults import FaultPlan

from .contenders import KEY, SETTINGS
from .server import Ledger, ledger_of, serve

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = ROOT / "benchmarks" / "results"
SEED: Final = 2024
#: Per-attempt timeout for every contender that takes one (as the issue's aiometer run).
TIMEOUT: Final = 10.0
ATTEMPTS: Final = 4
CONCURRENCY: Final = 16
REPORTS: Final = ("11013", "11012", "11014", "11011")


@dataclass(frozen=True, slots=True)
class Profile:
    """One server behaviour and the workload run against it."""

    name: str
    plan: FaultPlan
    companies: int
    years: tuple[int, ...]
    #: The window the server enforces and the contenders are told, ``(N, W seconds)``.
    rate: tuple[int, float] | None
    old_way: bool
    concurrency: int = CONCURRENCY


def _plan(*, faulty: bool, rate: tuple[int, float] | None) -> FaultPlan:
    """About 150 ms per answer; faulty: 5% 503s, 1% resets, 0.5% requests that never answer."""
    return FaultPlan(
        seed=SEED,
        latency=0.12,
        latency_jitter=0.03,
        rate_limit=rate,
        p_503=0.05 if faulty else 0.0,
        p_reset=0.01 if faulty else 0.0,
        p_hang=0.005 if faulty else 0.0,
    )


def profiles(quick: bool) -> list[Profile]:
    """calm and faulty: 10 companies x quarter x 3 years (240 items); the limited two: 20."""
    if quick:
        window = (20, 1.0)
        return [
            Profile("calm", _plan(faulty=False, rate=None), 4, (2023,), None, True),
            Profile("faulty+limited", _plan(faulty=True, rate=window), 8, (2023,), window, False),
        ]
    window = (100, 6.0)
    years = (2022, 2023, 2024)
    return [
        Profile("calm", _plan(faulty=False, rate=None), 10, years, None, True),
        Profile("faulty", _plan(faulty=True, rate=None), 10, years, None, True),
        Profile("limited", _plan(faulty=False, rate=window), 20, years, window, False),
        Profile("faulty+limited", _plan(faulty=True, rate=window), 20, years, window, False),
    ]


def companies(count: int) -> list[dict[str, str]]:
    """``count`` made-up listed companies (the stand-in serves any well-formed corp_code)."""
    return [
        {"corp_code": f"{10_000_000 + n:08d}", "stock_code": f"{n:06d}", "corp_name": f"회사{n}"}
        for n in range(1, count + 1)
    ]


def items_for(rows: list[dict[str, str]], years: tuple[int, ...]) -> list[list[str]]:
    """The quarter plan, company by company (the order the old way walks)."""
    return [
        [c["corp_code"], str(year), reprt, fs]
        for c in rows
        for year in years
        for reprt in REPORTS
        for fs in ("CFS", "OFS")
    ]


# --- floors ---------------------------------------------------------------------------------


def floor_seconds(profile: Profile, items: list[list[str]]) -> tuple[float, int]:
    """The least time the workload can take, and the requests R it must send.

    R is one request per item plus the resends the fault schedule forces (an attempt that
    meets a fault must be sent again). Windowed: ``(ceil(R/N) - 1) x W`` plus one latency.
    Otherwise the latency-bound time at the concurrency: the answers' summed latency spread
    over the workers, and never less than the slowest single answer.
    """
    plan = profile.plan
    delays: list[float] = []
    requests = 0
    for item in items:
        key = "/".join(item)
        attempt = 1
        while True:
            requests += 1
            fault = plan.fault_for(key, attempt)
            # A hung attempt costs nothing in the floor: its resend is counted instead.
            if fault != "hang":
                delays.append(plan.delay_for(key, attempt))
            if fault is None:
                break
            attempt += 1
    mean = statistics.fmean(delays)
    if profile.rate is not None:
        count, window = profile.rate
        return (math.ceil(requests / count) - 1) * window + mean, requests
    return max(sum(delays) / profile.concurrency, max(delays)), requests


# --- running one contender ------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    """One contender's run: what it says, and what the server and the OS saw."""

    contender: str
    profile: str
    elapsed: float
    wall: float
    ok: int
    no_data: int
    failed: int
    lost: int
    requests: int
    first_attempts: int
    resends: int
    hedges: int | None
    client_retries: int | None
    breaches: int
    peak_rss_mb: float
    cpu_s: float
    startup_ms: float | None
    teardown_ms: float | None
    floor: float
    planned: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, ratio to the floor included."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["x_floor"] = round(self.elapsed / self.floor, 3) if self.floor else None
        return data


def _python() -> str:
    return sys.executable


def _rss_of(command: list[str], env: dict[str, str] | None = None) -> Any:
    """Run ``command`` and measure its own peak RSS (wait4) and CPU."""
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    # Pipes are drained by threads so the child never blocks on a full pipe.
    import threading

    chunks: dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=("out", process.stdout)),
        threading.Thread(target=drain, args=("err", process.stderr)),
    ]
    for reader in readers:
        reader.start()
    _pid, status, usage = os.wait4(process.pid, 0)
    ended = time.monotonic()
    for reader in readers:
        reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        sys.stderr.write(chunks.get("err", b"").decode(errors="replace")[-3000:])
    return (
        process.returncode,
        chunks.get("out", b"").decode(errors="replace"),
        started,
        ended,
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
    )


def _result_line(out: str) -> dict[str, Any]:
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            parsed: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return parsed
    raise RuntimeError(f"the contender printed no result:\n{out[-2000:]}")


def spec_for(
    profile: Profile, base_url: str, rows: list[dict[str, str]], items: list[list[str]], out: Path
) -> dict[str, Any]:
    """What a contender is told (also written beside the results)."""
    return {
        "base_url": base_url,
        "companies": rows,
        "items": items,
        "concurrency": profile.concurrency,
        "rate": list(profile.rate) if profile.rate else None,
        "timeout": TIMEOUT,
        "attempts": ATTEMPTS,
        "out": str(out),
        "old_pause": 2.0,
        "asyncrawl_options": asyncrawl_options(),
    }


def asyncrawl_options() -> dict[str, Any]:
    """Extra CrawlConfig settings for asyncrawl, where this engine has them."""
    from asyncrawl.engine import CrawlConfig

    try:
        # Bounded hedging with a delay learned from the latencies seen (engine of round 2).
        CrawlConfig(hedge_after="auto")  # type: ignore[arg-type,unused-ignore]
    except Exception:  # an older engine: no hedging (it is off by default)
        return {}
    return {"hedge_after": "auto"}


def cli_flags() -> list[str]:
    """CLI flags for the attempt timeout and hedging, where this CLI has them."""
    import argparse

    from asyncrawl.cli import build_parser

    text = ""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            text = action.choices["crawl"].format_help()
    flags: list[str] = []
    if "--attempt-timeout" in text:
        flags += ["--attempt-timeout", f"{TIMEOUT:g}"]
    if "--hedge-after" in text:
        flags += ["--hedge-after", "auto"]
    return flags


def run_contender(
    name: str, profile: Profile, rows: list[dict[str, str]], items: list[list[str]], work: Path
) -> tuple[Run, Ledger]:
    """One contender against a fresh server with ``profile``'s plan."""
    floor, _requests = floor_seconds(profile, items)
    out = work / f"{profile.name}-{name}".replace(" ", "_").replace("(", "").replace(")", "")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with serve(profile.plan) as (base_url, pipe):
        spec = spec_for(profile, base_url, rows, items, out / "data")
        spec_path = out / "spec.json"
        spec_path.write_text(json.dumps(spec))
        if name == "asyncrawl (CLI)":
            result, started, ended, rss, cpu = _run_cli(profile, spec, out)
        else:
            _code, text, started, ended, rss, cpu = _rss_of(
                [_python(), "-m", "benchmarks.contenders", name, str(spec_path)]
            )
            result = _result_line(text)
        ledger = ledger_of(pipe)
    run = _assemble(name, profile, items, floor, result, ledger, started, ended, rss, cpu)
    return run, ledger


def _run_cli(
    profile: Profile, spec: dict[str, Any], out: Path
) -> tuple[dict[str, Any], float, float, float, float]:
    listing = out / "companies.csv"
    with listing.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["corp_code", "stock_code", "corp_name"])
        writer.writeheader()
        writer.writerows(spec["companies"])
    years = sorted({item[1] for item in spec["items"]})
    summary = out / "summary.json"
    command = [
        str(Path(_python()).with_name("asyncrawl")),
        "crawl",
        "--kind",
        "quarter",
        "--companies",
        str(listing),
        "--years",
        *years,
        "--out",
        spec["out"],
        "--base-url",
        spec["base_url"],
        "--concurrency",
        str(spec["concurrency"]),
        "--summary",
        str(summary),
        *cli_flags(),
    ]
    if profile.rate:
        command += ["--rate", f"{profile.rate[0]}/{profile.rate[1]:g}s"]
    _code, _text, started, ended, rss, cpu = _rss_of(command, env={"DART_API_KEY": KEY})
    document = json.loads(summary.read_text())
    result = {
        "elapsed": ended - started,
        "ok": document["ok"],
        "no_data": document["no_data"],
        "failed": len(document["failed"]),
        "remaining": len(document["remaining"]),
        "client_requests": document["requests"],
        "client_retries": document["retries"],
        "client_hedges": document.get("hedges"),
    }
    return result, started, ended, rss, cpu


def _assemble(
    name: str,
    profile: Profile,
    items: list[list[str]],
    floor: float,
    result: dict[str, Any],
    ledger: Ledger,
    started: float,
    ended: float,
    rss: float,
    cpu: float,
) -> Run:
    planned = len(items)
    finished = result["ok"] + result["no_data"] + result["failed"]
    # An item asyncrawl leaves "remaining" is reported, not lost: its summary lists it.
    reported_remaining = result.get("remaining", 0)
    startup = teardown = None
    if ledger.requests:
        startup = (ledger.requests[0][0] - started) * 1000
        teardown = (ended - max(r[1] for r in ledger.requests if r[4] != "hang")) * 1000
    return Run(
        contender=name,
        profile=profile.name,
        elapsed=round(result["elapsed"], 3),
        wall=round(ended - started, 3),
        ok=result["ok"],
        no_data=result["no_data"],
        failed=result["failed"] + reported_remaining,
        lost=planned - finished - reported_remaining,
        requests=ledger.total,
        first_attempts=ledger.first_attempts,
        resends=ledger.total - ledger.first_attempts,
        hedges=result.get("client_hedges"),
        client_retries=result.get("client_retries"),
        breaches=ledger.breaches,
        peak_rss_mb=round(rss, 1),
        cpu_s=round(cpu, 3),
        startup_ms=round(startup, 1) if startup is not None else None,
        teardown_ms=round(teardown, 1) if teardown is not None else None,
        floor=round(floor, 3),
        planned=planned,
    )


CONTENDER_ORDER: Final = (
    "old way",
    "aiohttp+semaphore",
    "aiometer",
    "scrapy",
    "crawlee",
    "asyncrawl (library)",
    "asyncrawl (CLI)",
)


def available(name: str) -> bool:
    """Whether a peer's package is installed here (peers live in .venv-bench only)."""
    import importlib.util

    module = {"aiometer": "aiometer", "scrapy": "scrapy", "crawlee": "crawlee"}.get(name)
    return module is None or importlib.util.find_spec(module) is not None


@contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="asyncrawl-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def log(text: str) -> None:
    """Progress on stderr, flushed (the suite runs for minutes)."""
    print(text, file=sys.stderr, flush=True)


def run_profiles(
    quick: bool, work: Path, only: set[str] | None = None
) -> tuple[list[Run], dict[str, Any]]:
    """Every contender on every profile; also the in-flight series of the calm run."""
    runs: list[Run] = []
    in_flight: dict[str, Any] = {}
    for profile in profiles(quick):
        rows = companies(profile.companies)
        items = items_for(rows, profile.years)
        floor, requests = floor_seconds(profile, items)
        log(f"profile {profile.name}: {len(items)} items, R={requests}, floor {floor:.2f} s")
        for name in CONTENDER_ORDER:
            if (name == "old way" and not profile.old_way) or (only and name not in only):
                continue
            if not available(name):
                log(f"  {name}: not installed here (make benchmark installs it), skipped")
                continue
            run, ledger = run_contender(name, profile, rows, items, work)
            runs.append(run)
            if profile.name == "calm" and name in ("old way", "asyncrawl (library)"):
                times, counts = ledger.in_flight(0.1)
                in_flight[name] = {"t": times, "in_flight": counts}
            log(
                f"  {name:20} {run.elapsed:7.2f} s ({run.elapsed / run.floor:5.2f}x floor) "
                f"ok {run.ok} nd {run.no_data} failed {run.failed} lost {run.lost} "
                f"req {run.requests} breaches {run.breaches} rss {run.peak_rss_mb} MB"
            )
    return runs, in_flight


def main(argv: list[str] | None = None) -> int:
    """Run the suite, write results and plots, print the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (< 2 minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument(
        "--only",
        choices=["profiles", "calm", "throughput", "scale", "engine"],
        action="append",
        help="run only these parts (repeatable)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS.json",
        help="only re-render the report and plots of an earlier run's JSON",
    )
    parser.add_argument(
        "--contender",
        choices=CONTENDER_ORDER,
        action="append",
        help="run only these contenders in the profiles (repeatable; with --update the "
        "others' rows stay)",
    )
    parser.add_argument(
        "--update",
        type=Path,
        metavar="RESULTS.json",
        help="run the --only parts and replace just those in an earlier run's JSON",
    )
    args = parser.parse_args(argv)
    from . import parts, report

    if args.render is not None:
        earlier = json.loads(args.render.read_text())
        suffix = "-quick" if earlier["quick"] else ""
        text = report.render(earlier)
        (args.render.parent / f"{args.render.stem}.md").write_text(text)
        print(text)
        report.plots(earlier, args.render.parent, suffix=suffix)
        return 0

    started = time.monotonic()
    wanted = set(args.only or ["profiles", "calm", "throughput", "scale", "engine"])
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "command": "make benchmark" + (" QUICK=1" if args.quick else ""),
        "quick": args.quick,
        "settings": SETTINGS,
        "timeout_s": TIMEOUT,
        "attempts": ATTEMPTS,
        "concurrency": CONCURRENCY,
    }
    with _workdir() as work:
        if "profiles" in wanted:
            runs, in_flight = run_profiles(args.quick, work, set(args.contender or ()))
            results["profiles"] = [r.as_dict() for r in runs]
            results["in_flight"] = in_flight
        if "calm" in wanted:
            results["calm_target"] = parts.calm_target(args.quick, work)
        if "throughput" in wanted:
            results["throughput"] = parts.throughput(args.quick, work)
        if "scale" in wanted:
            results["scale"] = parts.scale(args.quick, work)
        if "engine" in wanted:
            results["engine"] = parts.engine(args.quick, work)
    results["suite_seconds"] = round(time.monotonic() - started, 1)
    results["parts"] = dict.fromkeys(sorted(wanted), results["started_at"])
    if args.contender and "profiles" in wanted:
        results["parts"]["profiles"] += " (only " + ", ".join(args.contender) + ")"
    if args.update is not None:
        # Earlier figures stay; the parts run now replace theirs, and say when they ran.
        earlier = json.loads(args.update.read_text())
        if "profiles" in results and args.contender:
            # Only some contenders ran: their rows (and in-flight series) replace the old ones.
            fresh = {(r["profile"], r["contender"]) for r in results["profiles"]}
            kept = [
                r
                for r in earlier.get("profiles", [])
                if (r["profile"], r["contender"]) not in fresh
            ]
            merged = kept + results.pop("profiles")
            order = {name: index for index, name in enumerate(CONTENDER_ORDER)}
            profile_order = {p.name: i for i, p in enumerate(profiles(results["quick"]))}
            merged.sort(key=lambda r: (profile_order[r["profile"]], order[r["contender"]]))
            earlier["profiles"] = merged
            earlier.setdefault("in_flight", {}).update(results.pop("in_flight"))
        for key in ("profiles", "in_flight", "calm_target", "throughput", "scale", "engine"):
            if key in results:
                earlier[key] = results[key]
        earlier.setdefault("parts", {}).update(results["parts"])
        # The contenders' settings as this code runs them (a re-run contender may have changed).
        earlier["settings"] = results["settings"]
        earlier["suite_seconds"] = round(
            float(earlier.get("suite_seconds", 0)) + results["suite_seconds"], 1
        )
        earlier["machine_update"] = results["machine"]
        results = earlier
        args.out = args.update.parent
    args.out.mkdir(parents=True, exist_ok=True)
    name = "results-quick" if results["quick"] else "results"
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    text = report.render(results)
    (args.out / f"{name}.md").write_text(text)
    print(text)
    report.plots(results, args.out, suffix="-quick" if args.quick else "")
    log(f"suite took {results['suite_seconds']} s; results in {args.out}")
    return 0


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    load = os.getloadavg()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": [round(x, 2) for x in load],
        "processor": platform.processor() or platform.machine(),
    }


if __name__ == "__main__":
    sys.exit(main())
